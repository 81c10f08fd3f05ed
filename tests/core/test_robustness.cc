// Robustness against bad numbers and damaged files (issue 8, docs/ROBUSTNESS.md):
//   - checkpoints record a CRC-32 per tensor; a flipped byte, a stripped record or a wrong format
//     version is refused naming the file and the tensor; version-1 folders still load
//   - GPTQ falls back to round-to-nearest (counted in the report) when no dampening helps
//   - the NaN/Inf guard: non-finite scales fall back to round-to-nearest, non-finite float weights,
//     calibration inputs and layer outputs are errors naming the layer (and the linears)
//   - calibration statistics accumulate in float32 when the model runs in bf16
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <limits>

#include "algorithms/act_calibration.h"
#include "algorithms/gptq.h"
#include "algorithms/group_scaling.h"
#include "framework/backend.h"
#include "framework/algorithm.h"
#include "framework/calibration.h"
#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "framework/log.h"
#include "framework/safetensors.h"
#include "framework/tensor_checksum.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {
using ::ptq::testing::expect_error;
using ::ptq::testing::read_config;
using ::ptq::testing::write_config;
namespace fs = std::filesystem;
using json = nlohmann::json;


// A W4A16 g32 checkpoint of the tiny model, saved into a fresh folder.
fs::path saved_checkpoint(const std::string& name) {
  register_builtin_algorithms();
  const fs::path model = testing::tiny_model_dir();
  auto net = load_llama(model);
  LlamaNetworkHelper helper(model);
  auto algorithm =
      create_algorithm("ptq", PTQConfig::from_json({{"weight_quant_dtype", "int4"},
                                                    {"weight_quant_granularity", "per_group"},
                                                    {"group_size", 32},
                                                    {"weight_symmetric", false}}));
  algorithm->apply(*net, helper);
  algorithm->convert(*net);
  const fs::path dir = testing::temp_dir("robust_" + name) / "ckpt";
  save_checkpoint(*net, dir);
  return dir;
}

// ---- checksums ---------------------------------------------------------------------------------

TEST(Checksum, Crc32IsZlibs) {
  const std::string text = "123456789";  // the standard check value of CRC-32/ISO-HDLC
  EXPECT_EQ(crc32(text.data(), text.size()), 0xCBF43926u);
  EXPECT_EQ(crc32(nullptr, 0), 0u);
  // Incremental = whole, across the 8-byte fast path and the byte tail.
  std::string long_text(1001, '\0');
  for (size_t i = 0; i < long_text.size(); ++i) long_text[i] = static_cast<char>(i * 7 + 3);
  const uint32_t whole = crc32(long_text.data(), long_text.size());
  EXPECT_EQ(crc32(long_text.data() + 13, long_text.size() - 13, crc32(long_text.data(), 13)),
            whole);
}

TEST(Checksum, EveryShardRecordsItsTensors) {
  const fs::path dir = saved_checkpoint("records");
  const TensorStore store = TensorStore::open(dir);
  const json config = read_config(dir);
  EXPECT_EQ(config["quantization_config"]["ptq"]["format_version"], kCheckpointFormatVersion);
  for (const auto& file : store.files()) {
    ASSERT_TRUE(file->metadata().count(kChecksumMetadataKey)) << file->path();
    const json record = json::parse(file->metadata().at(kChecksumMetadataKey));
    EXPECT_EQ(record.size(), file->size());
  }
  const ChecksumReport report = verify_tensor_checksums(store, /*required=*/true);
  EXPECT_EQ(report.files_verified, store.files().size());
  EXPECT_EQ(report.tensors_verified, store.size());
}

TEST(Checksum, FlippedByteIsNamedWithFileAndTensor) {
  const fs::path dir = saved_checkpoint("flipped");
  const fs::path file = dir / "model.safetensors";
  // The tensor whose data holds the last byte of the file.
  std::string last_tensor;
  {
    const SafetensorsFile st(file);
    for (const auto& name : st.names())
      if (st.info(name).data_end == fs::file_size(file) - st.data_offset() &&
          st.info(name).nbytes() > 0)
        last_tensor = name;
  }
  ASSERT_FALSE(last_tensor.empty());
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char c = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x10));
  }
  expect_error([&] { load_quantized(dir); },
               {file.string(), "\"" + last_tensor + "\"", "damaged", "CRC-32"});
}

// Rewrites model.safetensors with the same tensors and no checksum record.
void strip_checksums(const fs::path& dir) {
  const fs::path file = dir / "model.safetensors";
  NamedTensors tensors;
  {
    const SafetensorsFile st(file);
    for (const auto& name : st.names()) tensors.emplace_back(name, st.tensor(name).clone());
  }
  write_safetensors(file, tensors, {{"format", "pt"}});
}

TEST(Checksum, Version1FoldersLoadUnverifiedButVersion2MustHaveThem) {
  const fs::path dir = saved_checkpoint("v1");
  const torch::Tensor ids = torch::tensor(std::vector<int64_t>{5, 17, 42, 99}).unsqueeze(0);
  const torch::Tensor expected = load_quantized(dir)->forward(ids);
  strip_checksums(dir);
  // Version 2 promises a record in every file: a file without one was replaced.
  expect_error([&] { load_quantized(dir); },
               {(dir / "model.safetensors").string(), "no \"ptq_crc32\" checksums"});
  // A version-1 folder (written before checksums) loads, with a warning.
  json config = read_config(dir);
  config["quantization_config"]["ptq"]["format_version"] = 1;
  write_config(dir, config);
  EXPECT_TRUE(torch::equal(load_quantized(dir)->forward(ids), expected));
}

TEST(Checksum, WrongFormatVersionsAreNamed) {
  const fs::path dir = saved_checkpoint("versions");
  json config = read_config(dir);
  config["quantization_config"]["ptq"]["format_version"] = kCheckpointFormatVersion + 1;
  write_config(dir, config);
  expect_error([&] { load_quantized(dir); }, {(dir / "config.json").string(), "newer ptq"});
  config["quantization_config"]["ptq"]["format_version"] = 0;
  write_config(dir, config);
  expect_error([&] { load_quantized(dir); },
               {(dir / "config.json").string(), "version 0", "damaged"});
  config["quantization_config"]["ptq"]["format_version"] = "2";
  write_config(dir, config);
  expect_error([&] { load_quantized(dir); }, {"format_version is missing or not an integer"});
}

TEST(Checksum, EditedRecordIsNamed) {
  const fs::path dir = saved_checkpoint("edited");
  const fs::path file = dir / "model.safetensors";
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
  {
    const SafetensorsFile st(file);
    for (const auto& name : st.names()) tensors.emplace_back(name, st.tensor(name).clone());
    metadata = st.metadata();
  }
  json record = json::parse(metadata.at(kChecksumMetadataKey));
  record["no.such.tensor"] = "00000000";
  metadata[kChecksumMetadataKey] = record.dump();
  write_safetensors(file, tensors, metadata);
  expect_error([&] { load_quantized(dir); },
               {file.string(), "\"no.such.tensor\"", "does not hold"});
}

// ---- GPTQ: Cholesky failure -> round-to-nearest ------------------------------------------------

TEST(GptqFallback, IndefiniteHessianGivesRoundToNearest) {
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({8, 32});
  WeightQuantSpec spec;
  spec.bits = 4;
  spec.group_size = 16;
  spec.symmetric = false;
  // -I: every damp (a fraction of mean(diag) = -1) keeps it negative definite.
  const torch::Tensor H = -torch::eye(32);
  const GptqResult r = gptq_quantize(w, H, spec, GptqOptions{}, "layer.x");
  EXPECT_NE(r.rtn_fallback.find("not positive definite"), std::string::npos) << r.rtn_fallback;
  EXPECT_EQ(r.damp_increases, 8);
  const QuantizedWeight rtn = quantize_weight(w, spec);
  EXPECT_TRUE(torch::equal(r.weight.data, rtn.data));
  EXPECT_TRUE(torch::equal(r.weight.scale, rtn.scale));
  // A usable Hessian still goes through GPTQ.
  const GptqResult ok = gptq_quantize(w, torch::eye(32), spec, GptqOptions{}, "layer.x");
  EXPECT_TRUE(ok.rtn_fallback.empty());
  // Non-finite statistics are an error naming the layer, not a fallback.
  torch::Tensor nan_h = torch::eye(32);
  nan_h[3][3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { gptq_quantize(w, nan_h, spec, GptqOptions{}, "layer.x"); },
               {"layer.x", "non-finite"});
}

// ---- NaN/Inf guard -----------------------------------------------------------------------------

TEST(NonFiniteGuard, NonFiniteScalesFallBackToRoundToNearestAndAreReported) {
  register_builtin_backends();  // install_quantized_weight makes the reference fake-quant kernel
  testing::TinyNet t = testing::tiny_net();
  torch::NoGradGuard no_grad;
  PTQConfig config = PTQConfig::from_json({{"weight_quant_dtype", "int4"}});
  auto linear = layer_linears(*t.net, 0)[0];
  const ResolvedLinearScheme scheme = resolve_linear_scheme(config, *linear);
  const torch::Tensor original = linear->weight.clone();
  QuantizedWeight broken = quantize_weight(original, scheme.weight);
  broken.scale[0][0] = std::numeric_limits<float>::infinity();
  QuantizationReport report;
  install_quantized_weight(*linear, broken, scheme, "my_algo", report);
  const LayerRecord* record = report.find(linear->path());
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->algorithm, "rtn");
  EXPECT_NE(record->fallback.find("my_algo gave non-finite scales"), std::string::npos);
  EXPECT_EQ(report.fallback_count(), 1);
  EXPECT_NE(report.fallback_list().find(linear->path()), std::string::npos);
  EXPECT_TRUE(torch::equal(linear->quantized->weight.scale,
                           quantize_weight(original, scheme.weight).scale));
  EXPECT_TRUE(torch::isfinite(linear->weight).all().item<bool>());

  // A float weight that is itself non-finite cannot be rescued.
  auto other = layer_linears(*t.net, 0)[1];
  other->weight[0][0] = std::numeric_limits<float>::quiet_NaN();
  expect_error(
      [&] {
        install_quantized_weight(*other, quantize_weight(other->weight, scheme.weight), scheme,
                                 "rtn", report);
      },
      {other->path(), "non-finite"});
}

// A data-needing stage that does nothing, or breaks one linear of layer 0 after "quantizing" it.
class NaNKernel : public LinearKernel {
 public:
  torch::Tensor forward(const torch::Tensor& x) override {
    return torch::full({x.size(0), x.size(1), out_}, std::numeric_limits<float>::quiet_NaN(),
                       x.options());
  }
  std::string name() const override { return "nan"; }
  int64_t weight_bytes() const override { return 0; }
  int64_t out_ = 0;
};

class BreakingStage : public LayerStage {
 public:
  explicit BreakingStage(bool breaks) : breaks_(breaks) {}
  std::string name() const override { return "breaking"; }
  bool needs_calibration_data() const override { return true; }
  void process(LayerContext& ctx) override {
    if (!breaks_ || ctx.layer_index != 0) return;
    auto& down = ctx.linears.back();  // mlp.down_proj
    auto kernel = std::make_shared<NaNKernel>();
    kernel->out_ = down->out_features();
    down->set_kernel(kernel);
  }

 private:
  bool breaks_;
};

TEST(NonFiniteGuard, NonFiniteCalibrationInputsNameTheLayer) {
  testing::TinyNet t = testing::tiny_net();
  torch::NoGradGuard no_grad;
  for (auto& item : t.net->named_parameters())
    if (item.key().find("embed_tokens") != std::string::npos) item.value()[7].fill_(INFINITY);
  PTQConfig config;
  QuantizationReport report;
  LayerwiseOptions options;
  options.tokens = torch::full({2, 8}, 7, torch::kInt64);
  expect_error(
      [&] {
        run_layerwise(*t.net, *t.helper, config, {std::make_shared<BreakingStage>(false)}, report,
                      options);
      },
      {"calibration", "decoder layer 0", "non-finite"});
}

TEST(NonFiniteGuard, NonFiniteLayerOutputsNameTheLinear) {
  testing::TinyNet t = testing::tiny_net();
  torch::NoGradGuard no_grad;
  PTQConfig config;
  QuantizationReport report;
  LayerwiseOptions options;
  options.tokens = torch::randint(0, 300, {2, 8}, torch::kInt64);
  // With the float fallback off (--no-float-fallback): the guard's error naming the linear.
  options.float_fallback = false;
  expect_error(
      [&] {
        run_layerwise(*t.net, *t.helper, config, {std::make_shared<BreakingStage>(true)}, report,
                      options);
      },
      {"decoder layer 0", "model.layers.0.mlp.down_proj", "--no-float-fallback"});
  // With it on, a stage that breaks the linear whatever the config says breaks it again in the
  // second pass: the same error, saying that keeping it in float did not help.
  options.float_fallback = true;
  expect_error(
      [&] {
        run_layerwise(*t.net, *t.helper, config, {std::make_shared<BreakingStage>(true)}, report,
                      options);
      },
      {"decoder layer 0", "model.layers.0.mlp.down_proj", "did not help"});
}

// ---- fp32 accumulation in bf16 models ----------------------------------------------------------

TEST(Fp32Accumulation, StatisticsOfBf16ActivationsAreExact) {
  torch::manual_seed(0);
  // 4096 tokens of magnitude ~300: sum x^2 ~ 3.7e8, far past fp16's 65504, and a bf16 sum would
  // keep only ~3 significant digits.
  const torch::Tensor x = (torch::randn({4, 1024, 16}) * 300).to(torch::kBFloat16);
  const torch::Tensor x64 = x.to(torch::kFloat64).reshape({-1, 16});
  const torch::Tensor reference = x64.t().matmul(x64) * (2.0 / x64.size(0));

  GptqHessianObserver hessian;
  hessian.observe(x.narrow(0, 0, 2));
  hessian.observe(x.narrow(0, 2, 2));
  const torch::Tensor H = hessian.hessian();
  EXPECT_EQ(H.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(H).all().item<bool>());
  EXPECT_LT(testing::relative_difference(H.to(torch::kFloat64), reference), 1e-5);

  // Ranges of values that fp16 cannot even hold.
  const torch::Tensor big =
      torch::tensor({-1.0e5f, 2.0e5f, 3.0f}).to(torch::kBFloat16).reshape({1, 1, 3});
  ChannelAbsMaxObserver absmax;
  absmax.observe(big);
  EXPECT_EQ(absmax.absmax().scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(absmax.absmax()).all().item<bool>());
  EXPECT_NEAR(absmax.absmax()[1].item<double>(), big[0][0][1].item<double>(), 1.0);
  ActRangeObserver range(ActObserver::kMinMax, 99.99, /*symmetric=*/false);
  range.observe(big);
  EXPECT_NEAR(range.range().second, big[0][0][1].item<double>(), 1.0);
  EXPECT_NEAR(range.range().first, big[0][0][0].item<double>(), 1.0);
}

}  // namespace
}  // namespace ptq
