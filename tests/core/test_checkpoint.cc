// Quantized checkpoints (framework/checkpoint.h, docs/FORMAT.md) on tiny random Llama networks:
// save -> load gives bit-identical logits for every scheme, the files follow compressed-tensors'
// conventions, damaged or mismatched checkpoints fail naming the tensor, and writes are
// all-or-nothing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "framework/algorithm.h"
#include "framework/checkpoint.h"
#include "framework/checkpoint_layout.h"
#include "framework/error.h"
#include "framework/safetensors.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/llama/random_model.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {
using ::ptq::testing::error_of;
using ::ptq::testing::expect_error;
using ::ptq::testing::read_config;
using ::ptq::testing::write_config;
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- helpers ------------------------------------------------------------------------------------

using testing::config_from;

const json kW8A16 = {{"weight_quant_dtype", "int8"}, {"weight_quant_granularity", "per_channel"}};
const json kW4A16G32Asym = {{"weight_quant_dtype", "int4"},
                            {"weight_quant_granularity", "per_group"},
                            {"group_size", 32},
                            {"weight_symmetric", false}};
const json kW4A16Sym = {{"weight_quant_dtype", "int4"},
                        {"weight_quant_granularity", "per_channel"}};
const json kW8A8Dynamic = {{"weight_quant_dtype", "int8"},
                           {"weight_quant_granularity", "per_channel"},
                           {"act_quant_dtype", "int8"},
                           {"act_quant_granularity", "per_token"}};
// Four schemes in one network, one layer skipped by a policy, lm_head quantized too.
json mixed_config() {
  json c = kW4A16G32Asym;
  c["opname_blacklist"] = json::array();
  c["layer_policies"] = {
      {{"pattern", "down_proj$"},
       {"weight_quant_dtype", "int8"},
       {"weight_quant_granularity", "per_channel"}},
      {{"pattern", "k_proj$"}, {"weight_quant_dtype", "int3"}},
      {{"pattern", "^model\\.layers\\.1\\.self_attn\\.o_proj$"},
       {"weight_quant_dtype", "int8"},
       {"weight_quant_granularity", "per_channel"},
       {"weight_symmetric", true},
       {"act_quant_dtype", "int8"},
       {"act_quant_granularity", "per_token"}},
      {{"pattern", "^model\\.layers\\.0\\.self_attn\\.q_proj$"}, {"skip", true}}};
  return c;
}

// Applies (and converts) the PTQ algorithm of `config` to a float network loaded from `model`.
std::shared_ptr<LlamaForCausalLM> quantized_network(const fs::path& model, const PTQConfig& config,
                                                    bool convert = true) {
  register_builtin_algorithms();
  auto net = load_llama(model);
  LlamaNetworkHelper helper(model);
  auto algorithm = create_algorithm("ptq", config);
  algorithm->apply(*net, helper);
  if (convert) algorithm->convert(*net);
  return net;
}

torch::Tensor logits_of(CausalLM& net) {
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(std::vector<int64_t>{5, 17, 42, 99, 3, 250, 7, 8, 100, 31}).unsqueeze(0);
  return net.forward(ids);
}

// Rewrites model.safetensors after `edit` changed its tensors (a damaged checkpoint).
void edit_tensors(const fs::path& dir,
                  const std::function<void(std::map<std::string, torch::Tensor>&)>& edit) {
  std::map<std::string, torch::Tensor> tensors;
  {
    TensorStore store = TensorStore::open(dir);
    for (const auto& name : store.names()) tensors[name] = store.tensor(name).clone();
  }
  edit(tensors);
  write_safetensors(dir / "model.safetensors", NamedTensors(tensors.begin(), tensors.end()));
}

// Saves a quantized tiny network and returns the folder (one per name).
fs::path saved_checkpoint(const std::string& name, const json& config) {
  auto dir = testing::temp_dir("ckpt_" + name) / "out";
  save_checkpoint(*quantized_network(testing::tiny_model_dir(), config_from(config)), dir);
  return dir;
}

// Resets the fault-injection hook when a test ends, whatever happens.
struct HookGuard {
  explicit HookGuard(std::function<void(const std::string&)> hook) {
    detail::set_save_checkpoint_hook(std::move(hook));
  }
  ~HookGuard() { detail::set_save_checkpoint_hook(nullptr); }
};

std::vector<std::string> folder_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// ---- round trips --------------------------------------------------------------------------------

void expect_round_trip(const std::string& name, const json& config) {
  auto net = quantized_network(testing::tiny_model_dir(), config_from(config));
  const torch::Tensor before = logits_of(*net);
  auto dir = testing::temp_dir("roundtrip_" + name) / "out";
  save_checkpoint(*net, dir);
  auto loaded = load_quantized(dir);
  const torch::Tensor after = logits_of(*loaded);
  EXPECT_TRUE(torch::equal(before, after))
      << name << ": max diff " << (before - after).abs().max().item<double>();
  // Every quantized layer got the same scheme back, and the same values.
  auto a = named_linears(*net), b = named_linears(*loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(bool(a[i].second->quantized), bool(b[i].second->quantized)) << a[i].first;
    if (!a[i].second->quantized) continue;
    const QuantizedWeight& wa = a[i].second->quantized->weight;
    const QuantizedWeight& wb = b[i].second->quantized->weight;
    EXPECT_EQ(wa.describe(), wb.describe()) << a[i].first;
    EXPECT_TRUE(torch::equal(wa.data, wb.data)) << a[i].first;
    EXPECT_TRUE(torch::equal(wa.scale, wb.scale)) << a[i].first;
    if (wa.zero_point.defined()) {
      EXPECT_TRUE(torch::equal(wa.zero_point, wb.zero_point)) << a[i].first;
    }
    EXPECT_EQ(a[i].second->backend_name, b[i].second->backend_name) << a[i].first;
  }
}

TEST(CheckpointRoundTrip, W8A16PerChannel) { expect_round_trip("w8a16", kW8A16); }
TEST(CheckpointRoundTrip, W4A16Group32Asymmetric) {
  expect_round_trip("w4a16_g32_asym", kW4A16G32Asym);
}
TEST(CheckpointRoundTrip, W4A16Symmetric) { expect_round_trip("w4a16_sym", kW4A16Sym); }
TEST(CheckpointRoundTrip, W8A8Dynamic) { expect_round_trip("w8a8_dynamic", kW8A8Dynamic); }
TEST(CheckpointRoundTrip, LayerPoliciesMixingSchemes) {
  expect_round_trip("mixed", mixed_config());
}

TEST(CheckpointRoundTrip, FloatNetwork) {
  auto net = load_llama(testing::tiny_model_dir());
  auto dir = testing::temp_dir("roundtrip_float") / "out";
  save_checkpoint(*net, dir);
  EXPECT_FALSE(read_config(dir).contains("quantization_config"));
  EXPECT_FALSE(read_checkpoint_config(dir).has_value());
  auto loaded = load_any_model(dir);
  EXPECT_FALSE(loaded->quantization.has_value());
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*loaded)));
  // load_checkpoint fills a float network too.
  auto other = std::make_shared<LlamaForCausalLM>(net->spec());
  load_checkpoint(dir, *other);
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*other)));
}

TEST(CheckpointRoundTrip, LoadBeforeConvertThenConvert) {
  // apply(DEPLOY) -> load_checkpoint -> convert gives the same network as apply -> convert -> load.
  auto dir = saved_checkpoint("load_before_convert", kW4A16G32Asym);
  const torch::Tensor expected = logits_of(*load_quantized(dir));
  auto net = std::make_shared<LlamaForCausalLM>(ModelSpec::from_file(dir / "config.json"));
  LlamaNetworkHelper helper(dir);
  auto algorithm = create_algorithm("ptq", *read_checkpoint_config(dir));
  algorithm->apply(*net, helper);
  load_checkpoint(dir, *net);
  algorithm->convert(*net);
  EXPECT_TRUE(torch::equal(expected, logits_of(*net)));
}

TEST(CheckpointRoundTrip, ShardedFolder) {
  auto net = quantized_network(testing::tiny_model_dir(), config_from(kW4A16G32Asym));
  auto dir = testing::temp_dir("roundtrip_sharded") / "out";
  SaveCheckpointOptions options;
  options.max_shard_bytes = 20000;  // the tiny model is ~200 KB: about ten shards
  save_checkpoint(*net, dir, options);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*load_quantized(dir))));
}

TEST(CheckpointRoundTrip, TiedEmbeddings) {
  auto model = testing::tiny_model_dir("tied", {{"tie_word_embeddings", true}});
  // Float: lm_head.weight is left out and the tie kept.
  auto net = load_llama(model);
  auto dir = testing::temp_dir("roundtrip_tied") / "float";
  save_checkpoint(*net, dir);
  EXPECT_FALSE(TensorStore::open(dir).has("lm_head.weight"));
  EXPECT_TRUE(read_config(dir)["tie_word_embeddings"].get<bool>());
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*load_any_model(dir))));
  // Quantized lm_head: it has its own tensors now, so the written config unties it.
  json config = kW4A16G32Asym;
  config["opname_blacklist"] = json::array();
  auto quantized = quantized_network(model, config_from(config));
  auto qdir = dir.parent_path() / "quantized";
  save_checkpoint(*quantized, qdir);
  EXPECT_FALSE(read_config(qdir)["tie_word_embeddings"].get<bool>());
  EXPECT_TRUE(TensorStore::open(qdir).has("lm_head.weight_packed"));
  EXPECT_TRUE(torch::equal(logits_of(*quantized), logits_of(*load_quantized(qdir))));
}

TEST(CheckpointRoundTrip, FloatTensorsGoBackToTheSourceDtypeWhenLossless) {
  auto model = testing::temp_dir("bf16_source") / "model";
  RandomModelOptions options;
  options.dtype = "bfloat16";
  options.seed = 3;
  options.init_std = 0.1;
  write_random_llama(model, preset_config("tiny"), options);
  auto net = quantized_network(model, config_from(kW4A16G32Asym));
  auto dir = testing::temp_dir("bf16_roundtrip") / "out";
  save_checkpoint(*net, dir);
  TensorStore store = TensorStore::open(dir);
  // Loaded from bf16 and unchanged: stored as bf16 again, not widened to the fp32 compute dtype.
  EXPECT_EQ(store.tensor("model.embed_tokens.weight").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(store.tensor("model.norm.weight").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(read_config(dir)["torch_dtype"], "bfloat16");
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*load_quantized(dir))));
  // A tensor an algorithm changed (not bf16-representable any more) keeps fp32, and the config says so.
  {
    torch::NoGradGuard no_grad;
    net->model->norm->weight.mul_(1.0001);
  }
  auto changed = dir.parent_path() / "changed";
  save_checkpoint(*net, changed);
  EXPECT_EQ(TensorStore::open(changed).tensor("model.norm.weight").scalar_type(), torch::kFloat32);
  EXPECT_EQ(read_config(changed)["torch_dtype"], "float32");
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*load_quantized(changed))));
}

// ---- what is written ----------------------------------------------------------------------------

TEST(CheckpointFormat, FollowsCompressedTensorsConventions) {
  auto dir = saved_checkpoint("format_w4", kW4A16G32Asym);
  const json q = read_config(dir)["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], "pack-quantized");
  EXPECT_EQ(q["quantization_status"], "compressed");
  EXPECT_EQ(q["ignore"], json::array({"lm_head"}));
  EXPECT_TRUE(q["kv_cache_scheme"].is_null());
  ASSERT_EQ(q["config_groups"].size(), 1u);
  const json& group = q["config_groups"]["group_0"];
  EXPECT_EQ(group["targets"], json::array({"Linear"}));
  EXPECT_EQ(group["weights"]["num_bits"], 4);
  EXPECT_EQ(group["weights"]["type"], "int");
  EXPECT_EQ(group["weights"]["strategy"], "group");
  EXPECT_EQ(group["weights"]["group_size"], 32);
  EXPECT_EQ(group["weights"]["symmetric"], false);
  EXPECT_TRUE(group["input_activations"].is_null());
  EXPECT_EQ(q["ptq"]["format_version"], kCheckpointFormatVersion);
  EXPECT_EQ(config_from(q["ptq"]["config"]).weight_quant_dtype, QuantDtype::kInt4);

  TensorStore store = TensorStore::open(dir);
  const std::string down = "model.layers.0.mlp.down_proj";  // [64, 160]: 5 groups of 32
  EXPECT_FALSE(store.has(down + ".weight"));
  EXPECT_EQ(store.info(down + ".weight_packed").dtype_name, "I32");
  EXPECT_EQ(store.info(down + ".weight_packed").shape, (std::vector<int64_t>{64, 20}));
  EXPECT_EQ(store.info(down + ".weight_scale").dtype_name, "F32");
  EXPECT_EQ(store.info(down + ".weight_scale").shape, (std::vector<int64_t>{64, 5}));
  EXPECT_EQ(store.info(down + ".weight_zero_point").dtype_name,
            "I32");  // packed along the output dim
  EXPECT_EQ(store.info(down + ".weight_zero_point").shape, (std::vector<int64_t>{8, 5}));
  EXPECT_EQ(store.info(down + ".weight_shape").dtype_name, "I64");
  EXPECT_TRUE(torch::equal(store.tensor(down + ".weight_shape"),
                           torch::tensor(std::vector<int64_t>{64, 160})));
  EXPECT_EQ(store.info("lm_head.weight").dtype_name, "F32");
  EXPECT_TRUE(store.has("model.norm.weight"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));
}

TEST(CheckpointFormat, MixedSchemesGetOneGroupEach) {
  auto dir = saved_checkpoint("format_mixed", mixed_config());
  const json q = read_config(dir)["quantization_config"];
  EXPECT_EQ(q["format"], "mixed-precision");
  EXPECT_EQ(q["ignore"], json::array({"model.layers.0.self_attn.q_proj"}));
  std::map<std::string, json> by_target;  // exact names, no "Linear"
  for (const auto& [name, group] : q["config_groups"].items())
    for (const auto& target : group["targets"]) by_target[target.get<std::string>()] = group;
  EXPECT_EQ(by_target.count("Linear"), 0u);
  EXPECT_EQ(by_target.at("lm_head")["weights"]["num_bits"], 4);
  EXPECT_EQ(by_target.at("model.layers.0.mlp.down_proj")["weights"]["strategy"], "channel");
  EXPECT_EQ(by_target.at("model.layers.1.self_attn.k_proj")["weights"]["num_bits"], 3);
  const json& w8a8 = by_target.at("model.layers.1.self_attn.o_proj");
  EXPECT_EQ(w8a8["format"], "int-quantized");
  EXPECT_EQ(w8a8["input_activations"]["strategy"], "token");
  EXPECT_EQ(w8a8["input_activations"]["dynamic"], true);
  TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.info("model.layers.1.self_attn.o_proj.weight").dtype_name, "I8");
  EXPECT_FALSE(store.has("model.layers.1.self_attn.o_proj.weight_shape"));
  EXPECT_EQ(store.info("model.layers.0.self_attn.q_proj.weight").dtype_name,
            "F32");  // skipped: float
  // 8-bit weight-only codes are packed too (vLLM's WNA16 reads pack-quantized 8-bit, not
  // int-quantized).
  EXPECT_EQ(store.info("model.layers.0.mlp.down_proj.weight_packed").shape,
            (std::vector<int64_t>{64, 40}));
  // 3-bit: ten codes per int32.
  EXPECT_EQ(store.info("model.layers.1.self_attn.k_proj.weight_packed").shape,
            (std::vector<int64_t>{32, 7}));
}

// Every layout entry's declared dtype and shape is what encode() produces, and decode(encode())
// restores the params exactly -- on awkward shapes (rows and columns that do not fill a word) and
// on schemes the built-in algorithms do not produce (per-tensor weights, static asymmetric
// activations).
TEST(CheckpointLayout, EncodeDecodeRestoresParamsExactly) {
  torch::manual_seed(3);
  struct Case {
    int bits;
    int64_t group_size;
    bool symmetric;
    ActQuant act;
    bool act_symmetric;
  };
  const std::vector<Case> cases = {{8, kPerChannel, true, ActQuant::kNone, true},
                                   {8, kPerTensor, false, ActQuant::kNone, true},
                                   {4, 16, false, ActQuant::kNone, true},
                                   {4, kPerTensor, true, ActQuant::kNone, true},
                                   {3, 16, false, ActQuant::kNone, true},
                                   {8, kPerChannel, true, ActQuant::kInt8PerTensorStatic, false},
                                   {8, kPerTensor, true, ActQuant::kInt8PerTensorStatic, true},
                                   {4, kPerChannel, true, ActQuant::kInt8PerTokenDynamic, true}};
  for (const Case& c : cases) {
    WeightQuantSpec spec;
    spec.bits = c.bits;
    spec.group_size = c.group_size;
    spec.symmetric = c.symmetric;
    QuantizedLinearParams original;
    original.weight = quantize_weight(torch::randn({9, 48}), spec);
    original.act = c.act;
    original.act_symmetric = c.act_symmetric;
    if (c.act == ActQuant::kInt8PerTensorStatic) {
      original.input_scale = torch::tensor({0.0371f});
      if (!c.act_symmetric) original.input_zero_point = torch::full({1}, -5, torch::kInt8);
    }
    QuantizedLinearParams empty = original;  // same layout, zero values
    empty.weight.data = torch::zeros_like(original.weight.data);
    empty.weight.scale = torch::zeros_like(original.weight.scale);
    if (original.weight.zero_point.defined())
      empty.weight.zero_point = torch::zeros_like(original.weight.zero_point);
    if (original.input_scale.defined()) empty.input_scale = torch::zeros_like(original.input_scale);
    if (original.input_zero_point.defined())
      empty.input_zero_point = torch::zeros_like(original.input_zero_point);

    const std::string what = original.weight.describe() + " " + original.scheme().name();
    const auto written = compressed_tensors_layout(original);
    const auto reading = compressed_tensors_layout(empty);
    ASSERT_EQ(written.size(), reading.size()) << what;
    for (size_t i = 0; i < written.size(); ++i) {
      torch::Tensor stored = written[i].encode();
      EXPECT_EQ(stored.scalar_type(), written[i].dtype) << what << " " << written[i].suffix;
      EXPECT_EQ(stored.sizes().vec(), written[i].shape) << what << " " << written[i].suffix;
      EXPECT_EQ(reading[i].shape, written[i].shape) << what << " " << written[i].suffix;
      reading[i].decode(stored);
    }
    EXPECT_NO_THROW(empty.validate()) << what;
    EXPECT_TRUE(torch::equal(empty.weight.data, original.weight.data)) << what;
    EXPECT_TRUE(torch::equal(empty.weight.scale, original.weight.scale)) << what;
    if (original.weight.zero_point.defined()) {
      EXPECT_TRUE(torch::equal(empty.weight.zero_point, original.weight.zero_point)) << what;
    }
    if (original.input_scale.defined()) {
      EXPECT_TRUE(torch::equal(empty.input_scale, original.input_scale)) << what;
    }
    if (original.input_zero_point.defined()) {
      EXPECT_TRUE(torch::equal(empty.input_zero_point, original.input_zero_point)) << what;
    }
  }
}

// ---- mismatches and damage ----------------------------------------------------------------------

// A network with the DEPLOY structure of `config` (not the checkpoint's).
std::shared_ptr<LlamaForCausalLM> deploy_network(const json& config) {
  json deploy = config;
  deploy["mode"] = "deploy";
  register_builtin_algorithms();
  auto net = load_llama(testing::tiny_model_dir());
  LlamaNetworkHelper helper(testing::tiny_model_dir());
  create_algorithm("ptq", config_from(deploy))->apply(*net, helper);
  return net;
}

TEST(CheckpointErrors, DifferentGroupSizeIsNamed) {
  auto dir = saved_checkpoint("mismatch_group", kW4A16G32Asym);
  json other = kW4A16G32Asym;
  other["group_size"] = 16;
  auto net = deploy_network(other);
  expect_error([&] { load_checkpoint(dir, *net); },
               {"config.json", "\"group_size\": 32", "\"group_size\": 16"});
}

TEST(CheckpointErrors, DifferentWeightDtypeIsNamed) {
  auto dir = saved_checkpoint("mismatch_dtype", kW4A16G32Asym);
  json other = kW4A16G32Asym;
  other["weight_quant_dtype"] = "int8";
  auto net = deploy_network(other);
  expect_error([&] { load_checkpoint(dir, *net); }, {"weight_quant_dtype", "\"int4\"", "\"int8\""});
}

TEST(CheckpointErrors, QuantizedCheckpointNeedsAQuantizedStructure) {
  auto dir = saved_checkpoint("into_float", kW8A16);
  auto net = load_llama(testing::tiny_model_dir());
  expect_error([&] { load_checkpoint(dir, *net); }, {"no quantized structure", "load_quantized"});
  auto fdir = testing::temp_dir("float_into_quantized") / "out";
  save_checkpoint(*load_llama(testing::tiny_model_dir()), fdir);
  auto quantized = deploy_network(kW8A16);
  expect_error([&] { load_checkpoint(fdir, *quantized); }, {"float model", "quantized"});
}

// The checkpoint of `name`, damaged by `edit`, must fail load_quantized with all `fragments`.
void expect_damage_named(const std::string& name,
                         const std::function<void(std::map<std::string, torch::Tensor>&)>& edit,
                         const std::vector<std::string>& fragments) {
  auto dir = saved_checkpoint("damaged_" + name, kW4A16G32Asym);
  edit_tensors(dir, edit);
  expect_error([&] { load_quantized(dir); }, fragments);
}

const std::string kUp = "model.layers.1.mlp.up_proj";

TEST(CheckpointErrors, WrongShapeIsNamed) {
  expect_damage_named(
      "shape",
      [](auto& t) {
        t[kUp + ".weight_scale"] = t[kUp + ".weight_scale"].narrow(1, 0, 1).contiguous();
      },
      {"model.safetensors", kUp + ".weight_scale", "shape [160, 1]", "expected [160, 2]"});
}

TEST(CheckpointErrors, WrongDtypeIsNamed) {
  expect_damage_named(
      "dtype",
      [](auto& t) { t[kUp + ".weight_scale"] = t[kUp + ".weight_scale"].to(torch::kFloat16); },
      {"model.safetensors", kUp + ".weight_scale", "dtype F16", "expected F32"});
}

TEST(CheckpointErrors, MissingTensorIsNamed) {
  expect_damage_named("missing", [](auto& t) { t.erase(kUp + ".weight_zero_point"); },
                      {kUp + ".weight_zero_point", "missing", "w4a16-g32-asym"});
}

TEST(CheckpointErrors, ExtraTensorOfAQuantizedLayerIsNamed) {
  expect_damage_named("extra",
                      [](auto& t) {
                        t[kUp + ".weight"] = torch::zeros({160, 64});
                      },
                      {kUp + ".weight", "not part of layer"});
}

TEST(CheckpointErrors, WrongWeightShapeValuesAreNamed) {
  expect_damage_named("weight_shape",
                      [](auto& t) {
                        t[kUp + ".weight_shape"] = torch::tensor(std::vector<int64_t>{64, 160});
                      },
                      {kUp + ".weight_shape", "holds [64, 160]", "[160, 64]"});
}

TEST(CheckpointErrors, WrongFloatTensorIsNamed) {
  expect_damage_named("float", [](auto& t) { t["model.norm.weight"] = torch::ones({63}); },
                      {"model.norm.weight", "[63]", "[64]"});
}

TEST(CheckpointErrors, TruncatedFileIsNamed) {
  auto dir = saved_checkpoint("truncated", kW4A16G32Asym);
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  expect_error([&] { load_quantized(dir); }, {"model.safetensors"});
}

TEST(CheckpointErrors, ForeignOrNewerCheckpointsAreExplained) {
  auto dir = saved_checkpoint("foreign", kW8A16);
  json config = read_config(dir);
  config["quantization_config"]["ptq"]["format_version"] = kCheckpointFormatVersion + 1;
  write_config(dir, config);
  expect_error([&] { load_quantized(dir); }, {"config.json", "newer ptq", "upgrade"});
  config["quantization_config"].erase("ptq");
  write_config(dir, config);
  expect_error([&] { load_quantized(dir); }, {"config.json", "no quantization_config.ptq block"});
}

// ---- atomic writes ------------------------------------------------------------------------------

TEST(CheckpointAtomic, ParentThatIsAFileFailsCleanly) {
  auto base = testing::temp_dir("atomic_parent_file");
  std::ofstream(base / "file") << "x";
  auto net = load_llama(testing::tiny_model_dir());
  expect_error([&] { save_checkpoint(*net, base / "file" / "out"); }, {(base / "file").string()});
  EXPECT_EQ(folder_entries(base), std::vector<std::string>{"file"});
}

TEST(CheckpointAtomic, TargetThatIsAFileIsNotReplaced) {
  auto base = testing::temp_dir("atomic_target_file");
  std::ofstream(base / "out") << "x";
  expect_error([&] { save_checkpoint(*load_llama(testing::tiny_model_dir()), base / "out"); },
               {"not a folder"});
  EXPECT_TRUE(fs::is_regular_file(base / "out"));
}

TEST(CheckpointAtomic, FailureMidwayKeepsTheOldFolderAndLeavesNothing) {
  auto base = testing::temp_dir("atomic_failure");
  auto dir = base / "out";
  auto float_net = load_llama(testing::tiny_model_dir());
  save_checkpoint(*float_net, dir);
  std::ofstream(dir / "marker") << "old";
  auto quantized = quantized_network(testing::tiny_model_dir(), config_from(kW4A16G32Asym));
  for (const std::string stage : {"tensors written", "complete"}) {
    HookGuard hook([stage](const std::string& s) {
      if (s == stage) throw Error("injected failure at " + s);
    });
    expect_error([&] { save_checkpoint(*quantized, dir); }, {"injected failure at " + stage});
    EXPECT_EQ(folder_entries(base), std::vector<std::string>{"out"}) << stage;
    EXPECT_TRUE(fs::exists(dir / "marker")) << stage;
    EXPECT_FALSE(read_config(dir).contains("quantization_config")) << stage;
    EXPECT_TRUE(torch::equal(logits_of(*float_net), logits_of(*load_any_model(dir)))) << stage;
  }
  // Without the hook the same save replaces the folder as a whole.
  save_checkpoint(*quantized, dir);
  EXPECT_EQ(folder_entries(base), std::vector<std::string>{"out"});
  EXPECT_FALSE(fs::exists(dir / "marker"));
  EXPECT_TRUE(read_checkpoint_config(dir).has_value());
}

// ---- tokenizer files ----------------------------------------------------------------------------

TEST(CheckpointTokenizer, FilesAreCopiedFromTheSourceFolder) {
  auto model = testing::tiny_model_dir("with_tokenizer_files");
  std::ofstream(model / "generation_config.json") << R"({"bos_token_id": 0, "eos_token_id": 1})";
  std::ofstream(model / "special_tokens_map.json") << R"({"eos_token": "<|eos|>"})";
  auto dir = testing::temp_dir("tokenizer_copy") / "out";
  save_checkpoint(*quantized_network(model, config_from(kW8A16)), dir);
  for (const char* file : {"tokenizer.json", "generation_config.json", "special_tokens_map.json"}) {
    ASSERT_TRUE(fs::exists(dir / file)) << file;
    EXPECT_EQ(fs::file_size(dir / file), fs::file_size(model / file)) << file;
  }
  LlamaNetworkHelper helper(dir);
  EXPECT_EQ(helper.create_tokenizer()->encode("hi", true),
            LlamaNetworkHelper(model).create_tokenizer()->encode("hi", true));
}

TEST(CheckpointTokenizer, NetworkBuiltInCodeWritesNone) {
  auto net = std::make_shared<LlamaForCausalLM>(
      ModelSpec::from_file(testing::tiny_model_dir() / "config.json"));
  ASSERT_TRUE(net->source_dir.empty());
  auto dir = testing::temp_dir("tokenizer_none") / "out";
  save_checkpoint(*net, dir);
  EXPECT_EQ(folder_entries(dir), (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_TRUE(torch::equal(logits_of(*net), logits_of(*load_any_model(dir))));
}

}  // namespace
}  // namespace ptq
