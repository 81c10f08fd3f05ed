// The apply -> convert lifecycle, RoundToNearest, the registry and the layer-wise calibration driver, on
// tiny random Llama networks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <map>

#include "algorithms/ptq.h"
#include "algorithms/round_to_nearest.h"
#include "framework/calibration.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "test_util.h"

namespace ptq {
namespace {

using testing::error_of;
using testing::relative_difference;
namespace fs = std::filesystem;

using testing::TinyNet;
using testing::tiny_net;

using testing::config_from;

torch::Tensor some_ids() { return torch::tensor(std::vector<int64_t>{5, 17, 42, 99, 3, 250, 7, 8, 100, 31}).unsqueeze(0); }

TEST(Algorithm, LifecycleMisuseIsAClearError) {
  TinyNet t = tiny_net();
  RoundToNearest rtn(PTQConfig{});
  EXPECT_NE(error_of([&] { rtn.convert(*t.net); }).find("before apply()"), std::string::npos);
  rtn.apply(*t.net, *t.helper);
  EXPECT_NE(error_of([&] { rtn.apply(*t.net, *t.helper); }).find("already called"), std::string::npos);
  TinyNet other = tiny_net();
  EXPECT_NE(error_of([&] { rtn.convert(*other.net); }).find("different network"), std::string::npos);
  rtn.convert(*t.net);
  EXPECT_NE(error_of([&] { rtn.convert(*t.net); }).find("already called"), std::string::npos);
  // A quantized network cannot be quantized again.
  RoundToNearest again(PTQConfig{});
  EXPECT_NE(error_of([&] { again.apply(*t.net, *t.helper); }).find("already quantized"), std::string::npos);
}

TEST(RoundToNearest, W8A16QuantizesEveryDecoderLinearAndKeepsLmHeadFloat) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor float_logits = t.net->forward(some_ids());
  std::map<std::string, torch::Tensor> originals;
  for (auto& linear : collect_linears(*t.net)) originals[linear->path()] = linear->weight.clone();

  // Defaults (int8 per-channel symmetric, lm_head blacklisted) on the reference backend.
  RoundToNearest rtn(config_from({{"backend", "reference"}}));
  rtn.apply(*t.net, *t.helper);
  for (auto& linear : collect_linears(*t.net)) {
    if (linear->path() == "lm_head") {
      EXPECT_FALSE(linear->quantized);
      continue;
    }
    ASSERT_TRUE(linear->quantized) << linear->path();
    // RTN's codes are exactly quantize_weight's on the float weight.
    WeightQuantSpec spec;
    QuantizedWeight expected = quantize_weight(originals[linear->path()], spec);
    EXPECT_TRUE(torch::equal(linear->quantized->weight.data, expected.data)) << linear->path();
    EXPECT_TRUE(torch::equal(linear->quantized->weight.scale, expected.scale)) << linear->path();
  }
  EXPECT_EQ(rtn.report().quantized_count(), static_cast<int64_t>(originals.size()) - 1);
  const LayerRecord* head = rtn.report().find("lm_head");
  ASSERT_NE(head, nullptr);
  EXPECT_NE(head->fallback.find("opname_blacklist"), std::string::npos);

  const torch::Tensor fake_logits = t.net->forward(some_ids());
  EXPECT_LT(relative_difference(fake_logits, float_logits), 0.02);  // int8 per channel: close to float
  EXPECT_GT(relative_difference(fake_logits, float_logits), 0.0);   // but it did change something

  rtn.convert(*t.net);
  const torch::Tensor real_logits = t.net->forward(some_ids());
  // The reference kernel computes what the fake-quant kernel simulated.
  EXPECT_LT(relative_difference(real_logits, fake_logits), 1e-4);
  for (auto& linear : collect_linears(*t.net)) {
    if (!linear->quantized) continue;
    EXPECT_EQ(linear->backend_name, "reference");
    EXPECT_EQ(linear->weight.numel(), 0) << "the float weight is released after convert";
  }
}

TEST(RoundToNearest, W4A16GroupedAsymmetricMatchesReferenceKernelAfterConvert) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor float_logits = t.net->forward(some_ids());
  PTQConfig config = config_from({{"weight_quant_dtype", "int4"},
                                  {"weight_quant_granularity", "per_group"},
                                  {"group_size", 32},
                                  {"weight_symmetric", false},
                                  {"backend", "reference"}});
  RoundToNearest rtn(config);
  rtn.apply(*t.net, *t.helper);
  const torch::Tensor fake_logits = t.net->forward(some_ids());
  rtn.convert(*t.net);
  const torch::Tensor real_logits = t.net->forward(some_ids());
  EXPECT_LT(relative_difference(real_logits, fake_logits), 1e-4);
  const double int4_error = relative_difference(fake_logits, float_logits);
  EXPECT_GT(int4_error, 1e-3);
  for (const auto& r : rtn.report().layers()) {
    if (r.name == "lm_head") continue;
    EXPECT_EQ(r.scheme, "w4a16-g32-asym") << r.name;
    EXPECT_LT(r.quantized_bytes * 3, r.float_bytes) << r.name;  // int4 + scales: well under a third
    EXPECT_GT(r.relative_error, 0.0);
    EXPECT_LT(r.relative_error, 0.2);
  }
}

TEST(RoundToNearest, GroupSizeThatDoesNotDivideFallsBackToPerChannelAndIsCounted) {
  TinyNet t = tiny_net();
  // 128 does not divide the tiny model's hidden size (64).
  PTQConfig config = config_from({{"weight_quant_dtype", "int4"},
                                  {"weight_quant_granularity", "per_group"},
                                  {"group_size", 128},
                                  {"weight_symmetric", true}});
  RoundToNearest rtn(config);
  rtn.apply(*t.net, *t.helper);
  int64_t per_channel = 0;
  for (const auto& r : rtn.report().layers()) {
    if (r.in_features % 128 == 0 || r.name == "lm_head") continue;
    EXPECT_NE(r.fallback.find("does not divide"), std::string::npos) << r.name;
    EXPECT_EQ(r.scheme, "w4a16") << r.name;
    ++per_channel;
  }
  EXPECT_GT(per_channel, 0);
  EXPECT_GE(rtn.report().fallback_count(), per_channel);
  EXPECT_NE(rtn.report().fallback_list().find("does not divide"), std::string::npos);
}

TEST(RoundToNearest, LayerPoliciesSkipAndOverride) {
  TinyNet t = tiny_net();
  PTQConfig config = config_from(
      {{"weight_quant_dtype", "int8"},
       {"opname_blacklist", nlohmann::json::array()},
       {"layer_policies",
        {{{"pattern", "down_proj$"}, {"skip", true}},
         {{"pattern", "self_attn\\.(q|k)_proj$"}, {"weight_quant_dtype", "int4"},
          {"weight_quant_granularity", "per_group"}, {"group_size", 16}}}}});
  RoundToNearest rtn(config);
  rtn.apply(*t.net, *t.helper);
  for (auto& linear : collect_linears(*t.net)) {
    const std::string& name = linear->path();
    if (name.find("down_proj") != std::string::npos) {
      EXPECT_FALSE(linear->quantized) << name;
    } else if (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos) {
      ASSERT_TRUE(linear->quantized) << name;
      EXPECT_EQ(linear->quantized->weight.bits, 4);
      EXPECT_EQ(linear->quantized->weight.group_size, 16);
    } else {
      ASSERT_TRUE(linear->quantized) << name;  // lm_head included: the blacklist is empty
      EXPECT_EQ(linear->quantized->weight.bits, 8) << name;
    }
  }
}

TEST(RoundToNearest, W8A8DynamicActivationsRunOnTheReferenceKernel) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor float_logits = t.net->forward(some_ids());
  PTQConfig config = config_from({{"act_quant_dtype", "int8"}, {"act_quant_granularity", "per_token"}});
  PTQ algo(config);
  algo.apply(*t.net, *t.helper);
  const torch::Tensor fake_logits = t.net->forward(some_ids());
  algo.convert(*t.net);
  const torch::Tensor real_logits = t.net->forward(some_ids());
  EXPECT_LT(relative_difference(fake_logits, float_logits), 0.05);
  // Integer accumulation vs float accumulation of the same codes differ in the last bits, which flips
  // the odd activation code of the next layer's per-token quantization: agreement is ~1%, not 1e-6
  // (test_reference_kernels checks one kernel against the fake-quant math exactly).
  EXPECT_LT(relative_difference(real_logits, fake_logits), 0.03);
  EXPECT_LT(relative_difference(real_logits, float_logits), 0.05);
  EXPECT_EQ(algo.report().find("model.layers.0.mlp.up_proj")->scheme, "w8a8-dynamic");
}

TEST(Algorithm, DeployBuildsTheEmptyStructureWithoutData) {
  TinyNet t = tiny_net();
  PTQConfig config = config_from({{"mode", "deploy"},
                                  {"weight_quant_dtype", "int4"},
                                  {"weight_quant_granularity", "per_group"},
                                  {"group_size", 32},
                                  {"weight_symmetric", false}});
  PTQ algo(config);
  algo.apply(*t.net, *t.helper);
  for (auto& linear : collect_linears(*t.net)) {
    if (linear->path() == "lm_head") continue;
    ASSERT_TRUE(linear->quantized);
    const QuantizedWeight& w = linear->quantized->weight;
    EXPECT_EQ(w.packing, PackingFormat::kInt4PackedInt32);
    EXPECT_EQ(w.scale.size(1), linear->in_features() / 32);
    EXPECT_TRUE(w.zero_point.defined());
    EXPECT_EQ(linear->weight.numel(), 0);
  }
  algo.convert(*t.net);
  EXPECT_TRUE(t.net->quantization.has_value());
  EXPECT_EQ(t.net->quantization->mode, PTQMode::kDeploy);
}

// The DEPLOY structure is built from one quantized row of zeros, repeated (quantizing the whole zero
// matrix made loading a 1.1B checkpoint take ~40 s): it must equal quantizing the whole matrix.
TEST(Algorithm, EmptyQuantizedWeightEqualsQuantizingZeros) {
  int cases = 0;
  for (int bits : {3, 4, 8}) {
    for (int64_t group : {kPerTensor, kPerChannel, int64_t{16}, int64_t{32}}) {
      for (bool symmetric : {true, false}) {
        for (auto [out, in] : {std::pair<int64_t, int64_t>{7, 64}, {1, 96}, {33, 160}}) {
          WeightQuantSpec spec;
          spec.bits = bits;
          spec.group_size = group;
          spec.symmetric = symmetric;
          SCOPED_TRACE(::testing::Message() << bits << " bits, group " << group << (symmetric ? " sym " : " asym ")
                                            << out << " x " << in);
          const QuantizedWeight expected = quantize_weight(torch::zeros({out, in}), spec);
          const QuantizedWeight got = empty_quantized_weight(out, in, spec, torch::kCPU);
          EXPECT_TRUE(torch::equal(got.data, expected.data));
          EXPECT_TRUE(torch::equal(got.scale, expected.scale));
          ASSERT_EQ(got.zero_point.defined(), expected.zero_point.defined());
          if (expected.zero_point.defined()) EXPECT_TRUE(torch::equal(got.zero_point, expected.zero_point));
          EXPECT_EQ(got.shape, expected.shape);
          EXPECT_EQ(got.packing, expected.packing);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 4 * 2 * 3);
}

TEST(AlgorithmRegistry, BuiltinsAreRegisteredAndUnknownNamesAreExplained) {
  register_builtin_algorithms();
  EXPECT_TRUE(has_algorithm("rtn"));
  EXPECT_TRUE(has_algorithm("ptq"));
  const std::string message = error_of([] { create_algorithm("no_such_algorithm", PTQConfig{}); });
  EXPECT_NE(message.find("\"no_such_algorithm\""), std::string::npos);
  EXPECT_NE(message.find("\"rtn\""), std::string::npos);
  EXPECT_NE(message.find("--plugin"), std::string::npos);
  EXPECT_EQ(create_algorithm("rtn", PTQConfig{})->name(), "rtn");
}

TEST(PTQComposition, ComposesInOrderAndNamesMissingParts) {
  PTQ plain(PTQConfig{});
  EXPECT_EQ(plain.composition(), std::vector<std::string>({"rtn"}));
  PTQ plugin(config_from({{"rounding", "my_plugin_rounding"}}));
  const std::string message = error_of([&] { plugin.stages(); });
  EXPECT_NE(message.find("\"my_plugin_rounding\""), std::string::npos);
  EXPECT_NE(message.find("--plugin"), std::string::npos);
  PTQ awq(config_from({{"weight_quant_dtype", "int4"},
                       {"weight_quant_granularity", "per_group"},
                       {"outliers_suppression", "awq"},
                       {"kvcache_quant_dtype", "int8"}}));
  EXPECT_EQ(awq.composition(), std::vector<std::string>({"awq", "rtn", "kv_cache_int8"}));
}

// ---- the calibration driver -------------------------------------------------------------------------

fs::path write_text_file(const std::string& name, const std::string& text) {
  fs::path path = testing::temp_dir("calibration") / name;
  std::ofstream(path) << text;
  return path;
}

std::string numbered_text(int words) {
  std::string text;
  for (int i = 0; i < words; ++i) text += "word" + std::to_string(i % 97) + (i % 13 == 12 ? ".\n" : " ");
  return text;
}

TEST(Calibration, SamplesAreSeededDistinctWindows) {
  TinyNet t = tiny_net();
  auto tokenizer = t.helper->create_tokenizer();
  const fs::path file = write_text_file("text.txt", numbered_text(3000));
  CalibrationConfig calibration;
  calibration.samples = 8;
  calibration.seq_len = 32;
  calibration.seed = 7;
  torch::Tensor a = sample_calibration_tokens(file.string(), *tokenizer, calibration);
  torch::Tensor b = sample_calibration_tokens(file.string(), *tokenizer, calibration);
  EXPECT_EQ(a.sizes(), torch::IntArrayRef({8, 32}));
  EXPECT_TRUE(torch::equal(a, b));
  calibration.seed = 8;
  EXPECT_FALSE(torch::equal(a, sample_calibration_tokens(file.string(), *tokenizer, calibration)));
  // Windows are slices of the tokenized text at multiples of seq_len, distinct from each other.
  const std::vector<int64_t> ids = tokenizer->encode(numbered_text(3000), false);
  for (int64_t i = 0; i < 8; ++i) {
    bool found = false;
    for (size_t start = 0; start + 32 <= ids.size() && !found; start += 32)
      found = std::equal(ids.begin() + start, ids.begin() + start + 32, a[i].data_ptr<int64_t>());
    EXPECT_TRUE(found) << "sample " << i;
    for (int64_t j = i + 1; j < 8; ++j) EXPECT_FALSE(torch::equal(a[i], a[j]));
  }
}

TEST(Calibration, BadCalibrationFilesAreClearErrors) {
  TinyNet t = tiny_net();
  auto tokenizer = t.helper->create_tokenizer();
  CalibrationConfig calibration;
  calibration.seq_len = 4096;
  const fs::path short_file = write_text_file("short.txt", "only a few words here");
  std::string message = error_of([&] { sample_calibration_tokens(short_file.string(), *tokenizer, calibration); });
  EXPECT_NE(message.find("short.txt"), std::string::npos);
  EXPECT_NE(message.find("seq_len"), std::string::npos);
  const fs::path empty_file = write_text_file("empty.txt", "");
  message = error_of([&] { sample_calibration_tokens(empty_file.string(), *tokenizer, calibration); });
  EXPECT_NE(message.find("empty"), std::string::npos);
  calibration.dataset = "/no/such/calibration.txt";
  message = error_of([&] { resolve_calibration_file(calibration); });
  EXPECT_NE(message.find("/no/such/calibration.txt"), std::string::npos);
}

// A stage that records what the driver hands it.
class RecordingStage : public LayerStage {
 public:
  std::string name() const override { return "recording"; }
  bool needs_calibration_data() const override { return true; }
  void process(LayerContext& ctx) override {
    indices.push_back(ctx.layer_index);
    inputs.push_back(ctx.inputs.clone());
    linear_counts.push_back(static_cast<int64_t>(ctx.linears.size()));
    if (!ctx.is_head()) outputs.push_back(ctx.run_layer());
  }
  std::vector<int64_t> indices;
  std::vector<torch::Tensor> inputs, outputs;
  std::vector<int64_t> linear_counts;
};

TEST(Calibration, DriverWalksLayersFeedingEachLayersOutputsToTheNext) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  PTQConfig config;
  auto stage = std::make_shared<RecordingStage>();
  QuantizationReport report;
  LayerwiseOptions options;
  options.batch_size = 2;  // exercises mini-batching: 5 samples in batches of 2
  options.tokens = torch::randint(0, 300, {5, 12}, torch::kInt64);
  run_layerwise(*t.net, *t.helper, config, {stage}, report, options);
  const int64_t L = t.net->num_decoder_layers();
  ASSERT_EQ(static_cast<int64_t>(stage->indices.size()), L + 1);
  EXPECT_EQ(stage->indices.back(), kHeadLayer);
  EXPECT_TRUE(torch::allclose(stage->inputs[0], t.net->embed(options.tokens)));
  for (int64_t i = 0; i + 1 <= L; ++i) EXPECT_TRUE(torch::equal(stage->inputs[i + 1], stage->outputs[i]));
  EXPECT_EQ(stage->linear_counts[0], 7);  // q, k, v, o, gate, up, down
  EXPECT_EQ(stage->linear_counts.back(), 1);  // lm_head
  // The head's inputs are the last layer's outputs: norm + lm_head of them are the network's logits.
  EXPECT_TRUE(torch::allclose(t.net->logits(stage->inputs.back()), t.net->forward(options.tokens), 1e-4, 1e-4));
}

}  // namespace
}  // namespace ptq
