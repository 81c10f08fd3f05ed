// The NaN/Inf guard's float fallback (framework/non_finite_fallback.h, docs/ROBUSTNESS.md): a decoder
// layer whose quantized outputs are not finite gets the linears that did it kept in float and is
// quantized again; the report names and counts each one, the saved config lists it in
// opname_blacklist (so DEPLOY rebuilds the same structure), the streamed run writes the same bytes as
// the in-memory one, and with the fallback off it is the guard's error as before.
//
// The plant: a rounding stage that quantizes like RTN but, for one linear, sets every scale to the
// largest float32 after install_quantized_weight's check (finite scales, as a broken plugin's could
// be): the dequantized weights overflow to Inf, so the layer's outputs are not finite.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <limits>

#include "framework/algorithm.h"
#include "framework/backend.h"
#include "framework/calibration.h"
#include "framework/checkpoint.h"
#include "framework/checkpoint_layout.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "framework/non_finite_fallback.h"
#include "framework/safetensors.h"
#include "framework/stream_quantize.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_loader.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ::ptq::testing::expect_error;

constexpr const char* kPlanted = "model.layers.1.mlp.down_proj";

class OverflowingRoundingStage : public LayerStage {
 public:
  std::string name() const override { return "overflowing_rtn"; }
  bool needs_calibration_data() const override { return true; }
  void process(LayerContext& ctx) override {
    for (auto& [linear, scheme] : rounding_targets(ctx.linears, ctx.config, ctx.report)) {
      install_quantized_weight(*linear, quantize_weight(linear->weight, scheme.weight), scheme, "overflowing_rtn",
                               ctx.report);
      if (linear->path() != kPlanted) continue;
      linear->quantized->weight.scale.fill_(std::numeric_limits<float>::max());
      linear->weight.copy_(linear->quantized->weight.dequantize(linear->weight.scalar_type()));  // what the kernel uses
      refresh_fake_quant_kernel(*linear);
    }
  }
};

class OverflowingRounding : public Algorithm {
 public:
  using Algorithm::Algorithm;
  std::string name() const override { return "overflowing_rtn"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override {
    return {std::make_shared<OverflowingRoundingStage>()};
  }
};

PTQConfig recipe() {
  return PTQConfig::from_json({{"backend", "reference"},
                               {"weight_quant_dtype", "int4"},
                               {"weight_quant_granularity", "per_group"},
                               {"group_size", 32},
                               {"weight_symmetric", false},
                               {"calibration",
                                {{"dataset", testing::random_words_file("non_finite_calibration", 5)},
                                 {"samples", 4},
                                 {"seq_len", 16},
                                 {"seed", 1}}}});
}

fs::path model_dir() { return testing::tiny_model_dir("non_finite3", {{"num_hidden_layers", 3}}); }

// In memory: apply (with `float_fallback`), convert, save into `out`. Returns the converted network.
std::shared_ptr<LlamaForCausalLM> quantize_in_memory(OverflowingRounding& algo, const fs::path& out,
                                                     bool float_fallback = true) {
  register_builtin_backends();
  auto net = load_llama(model_dir());
  LlamaNetworkHelper helper(model_dir());
  LayerwiseOptions options;
  options.float_fallback = float_fallback;
  algo.apply(*net, helper, options);
  algo.convert(*net);
  save_checkpoint(*net, out);
  return net;
}

StreamQuantizeResult quantize_streamed_into(OverflowingRounding& algo, const fs::path& out, bool float_fallback = true) {
  LoadOptions load;
  load.defer_weights = true;
  LlamaNetworkHelper helper(model_dir(), load);
  auto net = load_llama(model_dir(), load);
  StreamQuantizeOptions options;
  options.out = out;
  options.float_fallback = float_fallback;
  return quantize_streamed(algo, *net, helper, options);
}

TEST(NonFiniteFallback, PlantedOverflowIsKeptInFloatNamedCountedAndSaved) {
  const fs::path work = testing::temp_dir("non_finite_fallback");
  OverflowingRounding algo(recipe());
  auto net = quantize_in_memory(algo, work / "plain");

  const QuantizationReport& report = algo.report();
  EXPECT_EQ(report.non_finite_fallback_count(), 1);
  const LayerRecord* record = report.find(kPlanted);
  ASSERT_NE(record, nullptr);
  EXPECT_FALSE(record->quantized());
  EXPECT_TRUE(record->non_finite_fallback);
  EXPECT_NE(record->fallback.find("non-finite outputs"), std::string::npos) << record->fallback;
  EXPECT_NE(record->fallback.find("w4a16-g32-asym"), std::string::npos) << record->fallback;  // what failed
  EXPECT_NE(report.fallback_list().find(kPlanted), std::string::npos) << report.fallback_list();
  // Only the culprit: its neighbours in layer 1 and every other layer stay quantized.
  for (const auto& r : report.layers())
    if (r.name != kPlanted && r.name != "lm_head") {
      EXPECT_TRUE(r.quantized()) << r.name;
    }
  // The report survives a resumed run's round trip.
  EXPECT_EQ(QuantizationReport::from_json(report.to_json()).non_finite_fallback_count(), 1);

  // The saved config lists the exact name; the float weight of the second pass is the original one.
  const json saved = testing::read_config(work / "plain");
  const auto blacklist = saved.at("quantization_config").at("ptq").at("config").at("opname_blacklist");
  EXPECT_EQ(blacklist, json::array({"lm_head", kPlanted}));
  const SafetensorsFile original(model_dir() / "model.safetensors");
  const TensorStore store = TensorStore::open(work / "plain");
  EXPECT_TRUE(torch::equal(store.tensor(std::string(kPlanted) + ".weight"),
                           original.tensor(std::string(kPlanted) + ".weight")));

  // DEPLOY from the checkpoint rebuilds the same structure and gives the same logits.
  auto loaded = load_quantized(work / "plain");
  for (const auto& [name, linear] : named_linears(*loaded))
    EXPECT_EQ(static_cast<bool>(linear->quantized), name != kPlanted && name != "lm_head") << name;
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::randint(0, 300, {2, 12}, torch::kInt64);
  const torch::Tensor a = net->forward(tokens), b = loaded->forward(tokens);
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(NonFiniteFallback, StreamedWritesTheSameBytesAsInMemory) {
  const fs::path work = testing::temp_dir("non_finite_fallback_stream");
  OverflowingRounding plain_algo(recipe()), streamed_algo(recipe());
  quantize_in_memory(plain_algo, work / "plain");
  const StreamQuantizeResult streamed = quantize_streamed_into(streamed_algo, work / "streamed");
  EXPECT_EQ(streamed.report.non_finite_fallback_count(), 1);
  for (const auto& entry : fs::directory_iterator(work / "plain")) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(testing::read_bytes(entry.path()) == testing::read_bytes(work / "streamed" / name))
        << name << " differs";
  }
}

TEST(NonFiniteFallback, OffGivesTheGuardsErrorInBothPaths) {
  const fs::path work = testing::temp_dir("non_finite_fallback_off");
  OverflowingRounding in_memory(recipe());
  expect_error([&] { quantize_in_memory(in_memory, work / "plain", /*float_fallback=*/false); },
               {"decoder layer 1", "non-finite", kPlanted, "--no-float-fallback"});
  OverflowingRounding streamed(recipe());
  expect_error([&] { quantize_streamed_into(streamed, work / "streamed", /*float_fallback=*/false); },
               {"decoder layer 1", "non-finite", kPlanted, "--no-float-fallback"});
}

TEST(NonFiniteFallback, RefusedWhenALayerPolicySetsTheCulpritsScheme) {
  // A saved config cannot both skip the layer (blacklist) and set its scheme (the policy): the guard's
  // error, saying why there was no fallback.
  PTQConfig config = recipe();
  LayerPolicy policy;
  policy.pattern = "down_proj$";
  policy.group_size = 16;
  config.layer_policies.push_back(policy);
  OverflowingRounding algo(config);
  expect_error([&] { quantize_in_memory(algo, testing::temp_dir("non_finite_fallback_policy") / "out"); },
               {"decoder layer 1", kPlanted, "keeping", "in float is not possible", "layer_policies[0]"});
}

}  // namespace
}  // namespace ptq
