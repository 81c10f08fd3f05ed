// AWQ on tiny random Llama networks calibrated on random text (nothing from ../shared): the clip search
// against a brute-force reference, function preservation of the scaling, the behavioural claim (AWQ
// rescues weight-only rounding where activation outliers make RTN fail), composition and determinism.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "algorithms/awq.h"
#include "algorithms/group_scaling.h"
#include "algorithms/ptq.h"
#include "framework/backend.h"
#include "framework/quantized_weight.h"
#include "model_fixtures.h"
#include "test_util.h"

namespace ptq {
namespace {

using testing::relative_difference;
using testing::TinyNet;
using testing::tiny_net;

std::string awq_calibration_file() { return testing::random_words_file("awq", 21); }

// Weight-only W`bits` g32 asymmetric (32 divides the tiny model's 64 and 160), AWQ or not.
PTQConfig weight_only(int bits, bool awq, const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json j = {{"backend", "reference"},
                      {"weight_quant_dtype", bits == 4 ? "int4" : bits == 3 ? "int3" : "int8"},
                      {"weight_quant_granularity", "per_group"},
                      {"group_size", 32},
                      {"weight_symmetric", false},
                      {"outliers_suppression", awq ? "awq" : "none"},
                      {"calibration", {{"dataset", awq_calibration_file()}, {"samples", 8}, {"seq_len", 32}}}};
  j.merge_patch(extra);
  return PTQConfig::from_json(j, "test config");
}

// Held-out sequences of the calibration distribution, [4, 24].
torch::Tensor awq_heldout_ids(NetworkHelper& helper) { return testing::random_word_ids(helper, 22, 4, 24); }

// Relative logits error of the network quantized with `config` (optionally with outliers injected
// first) against the float logits.
double quantized_error(const PTQConfig& config, bool outliers) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = awq_heldout_ids(*t.helper);
  const torch::Tensor reference = t.net->forward(ids);
  if (outliers) inject_outliers(*t.net, *t.helper, {4, 20.0, 0});
  PTQ algo(config);
  algo.apply(*t.net, *t.helper);
  return relative_difference(t.net->forward(ids), reference);
}

TEST(AwqClipSearch, MatchesABruteForceSearch) {
  torch::manual_seed(5);
  torch::Tensor w = torch::randn({6, 64});
  w.index_put_({0, 3}, 9.0);  // an outlier weight: its group wants a clipped range
  const torch::Tensor x = torch::randn({40, 64});
  WeightQuantSpec spec;
  spec.bits = 4;
  spec.group_size = 16;
  spec.symmetric = false;
  const torch::Tensor ratio = search_clip_ratios(w, x, spec, 20, 0.45);
  ASSERT_EQ(ratio.sizes(), torch::IntArrayRef({6, 4}));
  for (int64_t o = 0; o < 6; ++o) {
    for (int64_t g = 0; g < 4; ++g) {
      double best_error = 1e300, best_ratio = 0;
      for (int i = 0; i <= 9; ++i) {
        WeightQuantSpec clipped = spec;
        clipped.clip_ratio = 1.0 - i / 20.0;
        const torch::Tensor d = (fake_quantize_weight(w, clipped) - w)[o].slice(0, 16 * g, 16 * (g + 1));
        const double error = x.slice(1, 16 * g, 16 * (g + 1)).matmul(d).pow(2).mean().item<double>();
        if (error < best_error * (1 - 1e-5)) best_error = error, best_ratio = clipped.clip_ratio;
      }
      EXPECT_NEAR(ratio[o][g].item<double>(), best_ratio, 1e-6) << "row " << o << " group " << g;
    }
  }
  EXPECT_LT(ratio[0][0].item<double>(), 1.0);  // the outlier's group is clipped
}

TEST(Awq, ScalingAlonePreservesTheFloatFunction) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = awq_heldout_ids(*t.helper);
  const torch::Tensor before = t.net->forward(ids);
  inject_outliers(*t.net, *t.helper, {4, 20.0, 0});  // so the search has a reason to scale
  auto* llama = dynamic_cast<LlamaForCausalLM*>(t.net.get());
  const torch::Tensor norm_before = llama->layer(0)->input_layernorm->weight.clone();
  Awq awq(weight_only(4, true, {{"algo_args", {{"awq", {{"clip_search", false}}}}}}));
  awq.apply(*t.net, *t.helper);
  EXPECT_FALSE(torch::allclose(llama->layer(0)->input_layernorm->weight, norm_before));
  EXPECT_TRUE(torch::allclose(t.net->forward(ids), before, 1e-4, 1e-4));
  for (auto& linear : collect_linears(*t.net)) EXPECT_FALSE(linear->quantized) << linear->path();
}

TEST(Awq, ClipSearchClampsWeightsButNotQueryAndKey) {
  // Layer 0 with and without the clip search: the scales are searched on the same inputs, so any
  // difference is the clipping, which only pulls weights towards 0.
  auto layer0 = [](bool clip) {
    TinyNet t = tiny_net();
    Awq awq(weight_only(3, true, {{"algo_args", {{"awq", {{"clip_search", clip}}}}}}));
    awq.apply(*t.net, *t.helper);
    auto* llama = dynamic_cast<LlamaForCausalLM*>(t.net.get());
    return std::make_pair(llama->layer(0)->self_attn->q_proj->weight.clone(),
                          llama->layer(0)->mlp->down_proj->weight.clone());
  };
  const auto [q_plain, down_plain] = layer0(false);
  const auto [q_clipped, down_clipped] = layer0(true);
  EXPECT_TRUE(torch::equal(q_clipped, q_plain));
  EXPECT_FALSE(torch::equal(down_clipped, down_plain));
  EXPECT_TRUE((down_clipped.abs() <= down_plain.abs()).all().item<bool>());
  EXPECT_TRUE((down_clipped * down_plain >= 0).all().item<bool>());
}

// The claim of the issue, made so it can fail: channel outliers in the activations wreck 4-bit RTN
// (the weights of those channels, divided by the outlier factor, lose their precision), AWQ keeps the
// error near its plain-model level, and AWQ is no worse than RTN without outliers.
TEST(Awq, BeatsRoundToNearestAndRescuesOutlierChannels) {
  const double rtn_plain = quantized_error(weight_only(4, false), false);
  const double rtn_outliers = quantized_error(weight_only(4, false), true);
  const double awq_plain = quantized_error(weight_only(4, true), false);
  const double awq_outliers = quantized_error(weight_only(4, true), true);
  std::printf("logits error W4A16 g32: RTN plain %.4f outliers %.4f; AWQ plain %.4f outliers %.4f\n", rtn_plain,
              rtn_outliers, awq_plain, awq_outliers);
  EXPECT_GT(rtn_outliers, 1.5 * rtn_plain);
  EXPECT_LT(awq_outliers, 0.6 * rtn_outliers);
  EXPECT_LT(awq_plain, rtn_plain);
  const double rtn3 = quantized_error(weight_only(3, false), false);
  const double awq3 = quantized_error(weight_only(3, true), false);
  std::printf("logits error W3A16 g32: RTN %.4f AWQ %.4f\n", rtn3, awq3);
  EXPECT_LT(awq3, rtn3);
}

TEST(Awq, ComposesBeforeRounding) {
  EXPECT_EQ(PTQ(weight_only(4, true)).composition(), std::vector<std::string>({"awq", "rtn"}));
  EXPECT_EQ(PTQ(weight_only(4, true, {{"precision_recovery", "gptq"}, {"kvcache_quant_dtype", "int8"}})).composition(),
            std::vector<std::string>({"awq", "gptq", "kv_cache_int8"}));
  TinyNet t = tiny_net();
  PTQ algo(weight_only(4, true, {{"precision_recovery", "gptq"}}));
  algo.apply(*t.net, *t.helper);
  EXPECT_EQ(algo.report().find("model.layers.1.mlp.down_proj")->scheme, "w4a16-g32-asym");
}

TEST(Awq, SameConfigGivesBitIdenticalWeights) {
  auto quantize = [] {
    TinyNet t = tiny_net();
    PTQ algo(weight_only(4, true));
    algo.apply(*t.net, *t.helper);
    std::vector<torch::Tensor> parts;
    for (auto& linear : collect_linears(*t.net)) {
      if (!linear->quantized) continue;
      parts.push_back(linear->quantized->weight.data);
      parts.push_back(linear->quantized->weight.scale);
      parts.push_back(linear->quantized->weight.zero_point);
    }
    for (const auto& p : t.net->parameters()) parts.push_back(p);
    return parts;
  };
  const auto a = quantize(), b = quantize();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

TEST(Awq, RejectsBadArguments) {
  const std::string message = testing::error_of(
      [] { weight_only(4, true, {{"algo_args", {{"awq", {{"clip_max_shrink", 1.0}}}}}}); });
  EXPECT_NE(message.find("clip_max_shrink"), std::string::npos) << message;
}

}  // namespace
}  // namespace ptq
