// SmoothQuant, static activation calibration, int8 KV cache and the outlier injection, on tiny random
// Llama networks calibrated on random text (nothing from ../shared).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <random>

#include "algorithms/act_calibration.h"
#include "algorithms/group_scaling.h"
#include "algorithms/kv_cache_int8.h"
#include "algorithms/ptq.h"
#include "algorithms/smooth_quant.h"
#include "framework/backend.h"
#include "framework/checkpoint.h"
#include "framework/kv_quant.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {

using testing::TinyNet;
using testing::tiny_net;
using testing::relative_difference;

std::string smooth_quant_calibration_file() { return testing::random_words_file("smooth_quant", 7); }

// A W8A8 config calibrated on smooth_quant_calibration_file(); `extra` keys on top.
PTQConfig w8a8(const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json j = {{"backend", "reference"},
                      {"act_quant_dtype", "int8"},
                      {"act_quant_granularity", "per_tensor"},
                      {"calibration", {{"dataset", smooth_quant_calibration_file()}, {"samples", 8}, {"seq_len", 32}}}};
  j.merge_patch(extra);
  return PTQConfig::from_json(j, "test config");
}

// Evaluation sequences from the same random-word distribution as the calibration text (static ranges
// are only meant for inputs like the calibration data): 4 x 24 tokens from the file's end.
torch::Tensor eval_ids() {
  static const torch::Tensor ids = [] {
    std::ifstream in(smooth_quant_calibration_file());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LlamaNetworkHelper helper(testing::tiny_model_dir());
    const std::vector<int64_t> all = helper.create_tokenizer()->encode(text, /*add_special_tokens=*/false);
    std::vector<int64_t> tail(all.end() - 96, all.end());
    return torch::tensor(tail).view({4, 24});
  }();
  return ids;
}

// Relative logits error of the network quantized with `config` (fake-quant, after apply), optionally
// with outliers injected first, against the float logits of the plain network.
double quantized_error(const PTQConfig& config, bool outliers) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = t.net->forward(eval_ids());
  if (outliers) inject_outliers(*t.net, *t.helper, {8, 50.0, 0});
  PTQ algo(config);
  algo.apply(*t.net, *t.helper);
  return relative_difference(t.net->forward(eval_ids()), reference);
}

// ---- act_calibration ------------------------------------------------------------------------------

TEST(ActCalibration, W8A8StaticCalibratesEveryLayerAndConverts) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor float_logits = t.net->forward(eval_ids());
  PTQ algo(w8a8({{"act_symmetric", false}}));
  EXPECT_EQ(algo.composition(), std::vector<std::string>({"rtn", "act_calibration"}));
  algo.apply(*t.net, *t.helper);
  for (auto& linear : collect_linears(*t.net)) {
    if (!linear->quantized) continue;
    ASSERT_TRUE(linear->quantized->input_scale.defined()) << linear->path();
    EXPECT_GT(linear->quantized->input_scale.item<float>(), 0.0f) << linear->path();
    ASSERT_TRUE(linear->quantized->input_zero_point.defined()) << linear->path();
    EXPECT_EQ(linear->quantized->input_zero_point.scalar_type(), torch::kInt8);
  }
  const torch::Tensor fake = t.net->forward(eval_ids());
  algo.convert(*t.net);
  const torch::Tensor real = t.net->forward(eval_ids());
  EXPECT_LT(relative_difference(fake, float_logits), 0.1);
  EXPECT_LT(relative_difference(real, fake), 0.03);
  EXPECT_EQ(algo.report().find("model.layers.1.mlp.down_proj")->scheme, "w8a8-static-asymact");
}

TEST(ActCalibration, ObserversClipAsDocumented) {
  // 100k standard normal values plus 10 far outliers at +-40.
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({1000, 100});
  x.view({-1}).slice(0, 0, 10).copy_(torch::tensor({40.f, -40.f, 40.f, -40.f, 40.f, -40.f, 40.f, -40.f, 40.f, -40.f}));
  auto range_of = [&](ActObserver kind, bool symmetric, const torch::Tensor& data) {
    ActRangeObserver observer(kind, 99.9, symmetric);
    observer.observe(data.slice(0, 0, 500));
    observer.observe(data.slice(0, 500));
    return observer.range();
  };
  const auto minmax = range_of(ActObserver::kMinMax, true, x);
  EXPECT_FLOAT_EQ(minmax.second, 40.0);
  const auto percentile = range_of(ActObserver::kPercentile, true, x);
  EXPECT_NEAR(percentile.second, 3.29, 0.2);  // the 99.9th percentile of |N(0, 1)|
  // MSE keeps sparse huge values (clipping one costs its whole magnitude squared) ...
  EXPECT_LE(range_of(ActObserver::kMse, true, x).second, minmax.second);
  // ... but clips a heavy (Laplace) tail, whose optimal 8-bit clip is ~0.85 of the sample max here.
  const torch::Tensor laplace = -torch::log(torch::rand({1000, 100})) * (torch::randint(0, 2, {1000, 100}) * 2 - 1);
  const auto laplace_mse = range_of(ActObserver::kMse, true, laplace);
  EXPECT_LT(laplace_mse.second, 0.95 * range_of(ActObserver::kMinMax, true, laplace).second);
  // Asymmetric on non-negative data (post-ReLU-like): the range starts at 0 and gets a zero point.
  ActRangeObserver asym(ActObserver::kMinMax, 99.9, false);
  asym.observe(x.abs());
  const ActivationQParams q = asym.qparams();
  ASSERT_TRUE(q.zero_point.defined());
  EXPECT_EQ(q.zero_point.item<int>(), -128);
  EXPECT_NEAR(q.scale.item<float>(), 40.0 / 255, 1e-6);
}

TEST(ActCalibration, BetterObserverLowersW8A8StaticErrorOnOutliers) {
  const double minmax = quantized_error(w8a8(), true);
  const double mse = quantized_error(w8a8({{"act_observer", "mse"}}), true);
  EXPECT_LT(mse, minmax);
}

// ---- smooth_quant ---------------------------------------------------------------------------------

TEST(SmoothQuant, SmoothingAlonePreservesTheFloatFunction) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor before = t.net->forward(eval_ids());
  auto* llama = dynamic_cast<LlamaForCausalLM*>(t.net.get());
  const torch::Tensor norm_before = llama->layer(0)->input_layernorm->weight.clone();
  SmoothQuant sq(w8a8({{"algo_args", {{"smooth_quant", {{"alpha", 0.7}, {"smooth_up_down", true}}}}}}));
  sq.apply(*t.net, *t.helper);
  EXPECT_FALSE(torch::allclose(llama->layer(0)->input_layernorm->weight, norm_before));
  EXPECT_TRUE(torch::allclose(t.net->forward(eval_ids()), before, 1e-4, 1e-4));
  for (auto& linear : collect_linears(*t.net)) EXPECT_FALSE(linear->quantized) << linear->path();
}

TEST(SmoothQuant, ComposesBeforeRoundingAndCalibration) {
  PTQ algo(w8a8({{"outliers_suppression", "smooth"}, {"kvcache_quant_dtype", "int8"}}));
  EXPECT_EQ(algo.composition(),
            std::vector<std::string>({"smooth_quant", "rtn", "act_calibration", "kv_cache_int8"}));
  EXPECT_EQ(algo.stages().size(), 4u);
}

// The behavioural claim, made so it can fail: outliers wreck per-tensor W8A8 without smoothing,
// and SmoothQuant (whose scales absorb exactly such channel factors) returns to its plain-model result.
TEST(SmoothQuant, RescuesW8A8OnAnOutlierInjectedModel) {
  const PTQConfig rtn = w8a8();
  const PTQConfig sq = w8a8({{"outliers_suppression", "smooth"}});
  const double rtn_plain = quantized_error(rtn, false), rtn_outliers = quantized_error(rtn, true);
  const double sq_plain = quantized_error(sq, false), sq_outliers = quantized_error(sq, true);
  std::printf("logits error: RTN W8A8 static plain %.4f outliers %.4f; SQ plain %.4f outliers %.4f\n", rtn_plain,
              rtn_outliers, sq_plain, sq_outliers);
  EXPECT_GT(rtn_outliers, 3 * rtn_plain);
  EXPECT_LT(sq_outliers, 1.1 * sq_plain + 1e-3);
  // Dynamic per-token activations suffer less, and smoothing still rescues them.
  const PTQConfig dyn = w8a8({{"act_quant_granularity", "per_token"}});
  const PTQConfig sq_dyn = w8a8({{"act_quant_granularity", "per_token"}, {"outliers_suppression", "smooth"}});
  const double dyn_outliers = quantized_error(dyn, true), sq_dyn_outliers = quantized_error(sq_dyn, true);
  const double sq_dyn_plain = quantized_error(sq_dyn, false);
  std::printf("logits error: RTN W8A8 dynamic outliers %.4f; SQ dynamic plain %.4f outliers %.4f\n",
              dyn_outliers, sq_dyn_plain, sq_dyn_outliers);
  EXPECT_LT(sq_dyn_outliers, 1.1 * sq_dyn_plain + 1e-3);
  EXPECT_GT(dyn_outliers, sq_dyn_outliers);
}

TEST(OutlierInjection, PreservesTheFloatFunctionAndMakesOutlierChannels) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor before = t.net->forward(eval_ids());
  EXPECT_EQ(inject_outliers(*t.net, *t.helper, {4, 50.0, 1}), 2 * t.net->num_decoder_layers());
  EXPECT_TRUE(torch::allclose(t.net->forward(eval_ids()), before, 1e-4, 1e-4));
  auto* llama = dynamic_cast<LlamaForCausalLM*>(t.net.get());
  const torch::Tensor w = llama->layer(0)->input_layernorm->weight.abs();
  EXPECT_GT((w > 10 * w.median()).sum().item<int64_t>(), 3);
}

// ---- kv_cache_int8 --------------------------------------------------------------------------------

TEST(KVCacheInt8, StaticAndDynamicCachesStayCloseToFloat) {
  for (const char* granularity : {"per_channel", "per_token"}) {
    TinyNet t = tiny_net();
    torch::NoGradGuard no_grad;
    const torch::Tensor float_logits = t.net->forward(eval_ids());
    PTQ algo(w8a8({{"weight_quant_dtype", "none"},
                   {"act_quant_dtype", "none"},
                   {"kvcache_quant_dtype", "int8"},
                   {"kvcache_quant_granularity", granularity}}));
    EXPECT_EQ(algo.composition(), std::vector<std::string>({"kv_cache_int8"}));
    algo.apply(*t.net, *t.helper);
    algo.convert(*t.net);
    const auto slots = collect_kv_cache_slots(*t.net);
    ASSERT_EQ(static_cast<int64_t>(slots.size()), t.net->num_decoder_layers());
    for (auto& slot : slots) {
      auto format = std::dynamic_pointer_cast<Int8KVCacheFormat>(slot->format());
      ASSERT_TRUE(format) << slot->path() << " " << slot->format()->name();
      EXPECT_EQ(format->params().mode == KVQuantMode::kStaticPerChannel, std::string(granularity) == "per_channel");
    }
    const double error = relative_difference(t.net->forward(eval_ids()), float_logits);
    // Static scales come from 256 calibration tokens only, so a few evaluation values clip.
    EXPECT_LT(error, std::string(granularity) == "per_channel" ? 0.03 : 0.01) << granularity;
    EXPECT_GT(error, 0.0) << granularity;  // the cache really is int8
  }
}


// ---- checkpoints ------------------------------------------------------------------------------------

// What the recipes produce survives save -> load_quantized bit for bit: smoothed weights, input scales,
// and the KV cache's format and static scales.
TEST(SmoothQuantCheckpoint, W8A8StaticWithInt8KVCacheRoundTrips) {
  for (const char* kv : {"per_channel", "per_token"}) {
    TinyNet t = tiny_net();
    torch::NoGradGuard no_grad;
    PTQ algo(w8a8({{"outliers_suppression", "smooth"},
                   {"act_symmetric", false},
                   {"kvcache_quant_dtype", "int8"},
                   {"kvcache_quant_granularity", kv}}));
    algo.apply(*t.net, *t.helper);
    algo.convert(*t.net);
    const torch::Tensor logits = t.net->forward(eval_ids());
    const auto dir = testing::temp_dir(std::string("smooth_quant_checkpoint_") + kv);
    save_checkpoint(*t.net, dir);
    const nlohmann::json config = nlohmann::json::parse(std::ifstream(dir / "config.json"));
    const nlohmann::json& scheme = config["quantization_config"]["kv_cache_scheme"];
    EXPECT_EQ(scheme["num_bits"], 8);
    EXPECT_EQ(scheme["dynamic"], std::string(kv) == "per_token");
    auto loaded = load_quantized(dir);
    for (auto& slot : collect_kv_cache_slots(*loaded))
      EXPECT_EQ(slot->format()->name(), std::string(kv) == "per_token" ? "int8-dynamic-per-token"
                                                                       : "int8-static-per-channel");
    EXPECT_TRUE(torch::equal(loaded->forward(eval_ids()), logits)) << kv;
  }
}

}  // namespace
}  // namespace ptq
