// GPTQ on tiny random Llama networks calibrated on random text (nothing from ../shared): the
// rounding beats round-to-nearest on every linear, survives singular Hessians, is deterministic,
// and the PTQ recipe runs end to end through convert and a checkpoint round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include "algorithms/gptq.h"
#include "algorithms/ptq.h"
#include "framework/calibration.h"
#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "kernel_test_util.h"
#include "model_fixtures.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {

using testing::TinyNet;
using testing::tiny_net;
using testing::random_words;
using testing::relative_difference;
using testing::spec;

std::string gptq_calibration_file() { return testing::random_words_file("gptq", 11); }

// Held-out text like the calibration text (GPTQ fits the calibration distribution), [4, 48].
torch::Tensor gptq_heldout_ids(NetworkHelper& helper) { return testing::random_word_ids(helper, 12, 4, 48); }

// W4A16 g32 asymmetric (32 divides the tiny model's 64 and 160), GPTQ with `gptq_args` on top.
PTQConfig w4_gptq(const nlohmann::json& gptq_args = nlohmann::json::object(), bool gptq = true) {
  nlohmann::json j = {
      {"backend", "reference"},
      {"weight_quant_dtype", "int4"},
      {"weight_quant_granularity", "per_group"},
      {"group_size", 32},
      {"weight_symmetric", false},
      {"precision_recovery", gptq ? "gptq" : "none"},
      {"algo_args", {{"gptq", gptq_args.is_null() ? nlohmann::json::object() : gptq_args}}},
      {"calibration", {{"dataset", gptq_calibration_file()}, {"samples", 8}, {"seq_len", 32}}}};
  return PTQConfig::from_json(j, "test config");
}

torch::Tensor eval_ids() {
  return torch::tensor(std::vector<int64_t>{5, 17, 42, 99, 3, 250, 7, 8, 100, 31, 64, 65, 66})
      .unsqueeze(0);
}

// Collects every input row a linear sees, as float32 [rows, in].
class InputRecorder : public LinearObserver {
 public:
  void observe(const torch::Tensor& x) override {
    rows.push_back(x.reshape({-1, x.size(-1)}).to(torch::kFloat32));
  }
  torch::Tensor all() const { return torch::cat(rows, 0); }
  std::vector<torch::Tensor> rows;
};

// The calibration inputs of every linear of the float network: [rows, in] per linear, in order.
std::vector<torch::Tensor> linear_inputs(CausalLM& net, const torch::Tensor& tokens) {
  std::vector<std::shared_ptr<InputRecorder>> recorders;
  auto linears = collect_linears(net);
  for (auto& linear : linears) {
    recorders.push_back(std::make_shared<InputRecorder>());
    linear->add_observer(recorders.back());
  }
  net.forward(tokens);
  std::vector<torch::Tensor> inputs;
  for (size_t i = 0; i < linears.size(); ++i) {
    linears[i]->clear_observers();
    inputs.push_back(recorders[i]->all());
  }
  return inputs;
}

// ||W X - Q X||_F with X [rows, in] and W, Q [out, in].
double output_error(const torch::Tensor& w, const torch::Tensor& q, const torch::Tensor& x) {
  return (x.matmul((w.to(torch::kFloat32) - q).t())).norm().item<double>();
}

// 2/n X^T X, accumulated as the GPTQ stage does (one addmm per batch), so results compare bit for
// bit.
torch::Tensor hessian_of(const torch::Tensor& x) {
  return torch::zeros({x.size(1), x.size(1)}).addmm_(x.t(), x) *
         (2.0 / static_cast<double>(x.size(0)));
}

// ---- the rounding itself
// ------------------------------------------------------------------------------

TEST(GptqQuantize, LowersTheOutputErrorBelowRoundToNearestOnEveryLinear) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  const torch::Tensor tokens = torch::randint(0, 300, {8, 32}, torch::kInt64);
  const auto inputs = linear_inputs(*t.net, tokens);
  const auto linears = collect_linears(*t.net);
  struct Case {
    WeightQuantSpec spec;
    GptqOptions options;
    const char* name;
  };
  GptqOptions act_order;
  act_order.act_order = true;
  GptqOptions act_order_static = act_order;
  act_order_static.static_groups = true;
  GptqOptions small_blocks;  // groups of 32 across blocks of 24: the lazy updates between blocks
  small_blocks.block_size = 24;
  GptqOptions minmax;  // the reference's default ranges
  minmax.mse = false;
  const std::vector<Case> cases = {
      {spec(4, 32, false), GptqOptions{}, "int4 g32 asym"},
      {spec(4, 32, true), GptqOptions{}, "int4 g32 sym"},
      {spec(3, kPerChannel, false), GptqOptions{}, "int3 per-channel asym"},
      {spec(4, 32, false), act_order, "int4 g32 asym act-order"},
      {spec(4, 32, false), act_order_static, "int4 g32 asym act-order static"},
      {spec(4, 32, false), small_blocks, "int4 g32 asym block 24"},
      {spec(4, 32, false), minmax, "int4 g32 asym min/max range"},
      {spec(3, 32, true), minmax, "int3 g32 sym min/max range"},
      {spec(8, kPerChannel, true), GptqOptions{}, "int8 per-channel sym"},
      {spec(4, kPerTensor, true), GptqOptions{}, "int4 per-tensor sym"}};
  for (const Case& c : cases) {
    double gptq_total = 0, rtn_total = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
      const torch::Tensor& w = linears[i]->weight;
      GptqResult r = gptq_quantize(w, hessian_of(inputs[i]), c.spec, c.options, linears[i]->path());
      r.weight.validate();
      EXPECT_EQ(r.damp_increases, 0) << c.name << " " << linears[i]->path();
      const double gptq = output_error(w, r.weight.dequantize(), inputs[i]);
      const double rtn = output_error(w, quantize_weight(w, c.spec).dequantize(), inputs[i]);
      EXPECT_LT(gptq, rtn) << c.name << " " << linears[i]->path();
      gptq_total += gptq;
      rtn_total += rtn;

      // The codes are what quantize_weight gives for GPTQ's own parameters: checkpoints re-quantize
      // exactly.
      WeightQuantSpec fixed = c.spec;
      fixed.scale = r.weight.scale;
      if (!c.spec.symmetric) fixed.zero_point = r.weight.zero_point;
      EXPECT_TRUE(torch::equal(quantize_weight(r.weight.dequantize(), fixed).data, r.weight.data))
          << c.name;
    }
    std::printf("%-34s sum ||WX - QX||: GPTQ %.4f  RTN %.4f  (%.2f)\n", c.name, gptq_total,
                rtn_total, gptq_total / rtn_total);
  }
}

TEST(GptqQuantize, SingularHessianIncreasesTheDampingInsteadOfFailing) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  // 2 independent directions spread over 16 channels (duplicated up to scale), and channel 5 always
  // 0: H has rank 2. With a tiny starting damp the float32 factorisation fails and GPTQ must retry.
  torch::Tensor basis = torch::randn({256, 2});
  torch::Tensor x = basis.matmul(torch::randn({2, 16})) * 100.0;
  x.select(1, 5).zero_();
  const torch::Tensor w = torch::randn({8, 16});
  GptqOptions options;
  options.damp_percent = 1e-12;
  GptqResult r = gptq_quantize(w, hessian_of(x), spec(4, 8, false), options, "singular");
  EXPECT_GT(r.damp_increases, 0);
  EXPECT_GT(r.damp, 1e-12);
  EXPECT_EQ(r.dead_columns, 1);
  const torch::Tensor q = r.weight.dequantize();
  EXPECT_TRUE(q.isfinite().all().item<bool>());
  // The always-zero input's weights are zero (exact in every scheme).
  EXPECT_TRUE(q.select(1, 5).eq(0).all().item<bool>());
  EXPECT_LE(output_error(w, q, x),
            output_error(w, quantize_weight(w, spec(4, 8, false)).dequantize(), x));

  // At the default 1% the same inputs need no retry.
  GptqResult standard =
      gptq_quantize(w, hessian_of(x), spec(4, 8, false), GptqOptions{}, "singular");
  EXPECT_EQ(standard.damp_increases, 0);
}

TEST(GptqQuantize, MseRangeSearchNeverRoundsARowWorseThanMinMax) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  // Student-t-like rows (3 degrees of freedom): the range min/max spans wastes levels on the tails.
  const torch::Tensor w = torch::randn({16, 64}) / (torch::randn({16, 64, 3}).pow(2).mean(2).sqrt());
  // With H = I no column's error reaches another: GPTQ is round-to-nearest with its group ranges,
  // so the per-row rounding error shows the range search alone.
  const torch::Tensor identity = torch::eye(64);
  GptqOptions mse, minmax;
  minmax.mse = false;
  for (bool symmetric : {false, true}) {
    const WeightQuantSpec s = spec(4, 32, symmetric);
    auto row_error = [&](const GptqOptions& options) {
      const torch::Tensor q = gptq_quantize(w, identity, s, options, "mse").weight.dequantize();
      return (q - w).abs().pow(2.4).view({16, 2, 32}).sum(2);  // [rows, groups]
    };
    const torch::Tensor searched = row_error(mse), unsearched = row_error(minmax);
    EXPECT_TRUE(searched.le(unsearched * (1 + 1e-6)).all().item<bool>()) << "symmetric " << symmetric;
    const double ratio = searched.sum().item<double>() / unsearched.sum().item<double>();
    EXPECT_LT(ratio, 0.98) << "symmetric " << symmetric;  // measured 0.96 asymmetric, < 0.9 symmetric
  }
}

TEST(GptqQuantize, BadInputsAreErrorsNamingTheLayer) {
  const torch::Tensor w = torch::randn({4, 8});
  try {
    gptq_quantize(w, torch::eye(7), spec(4, 8, false), GptqOptions{}, "model.layers.0.mlp.up_proj");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos)
        << e.what();
  }
  torch::Tensor nan_h = torch::eye(8);
  nan_h[0][0] = std::nan("");
  EXPECT_THROW(gptq_quantize(w, nan_h, spec(4, 8, false), GptqOptions{}, "nan"), Error);
}

// ---- the stage in the layer-wise pass
// ------------------------------------------------------------------

// Fake-quant logits on held-out text after apply, against the float logits of the same (fresh)
// network.
double logits_error(const PTQConfig& config, QuantizationReport* report = nullptr) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = gptq_heldout_ids(*t.helper);
  const torch::Tensor reference = t.net->forward(ids);
  PTQ algo(config);
  algo.apply(*t.net, *t.helper);
  if (report) *report = algo.report();
  return relative_difference(t.net->forward(ids), reference);
}

TEST(Gptq, PtqRecipeQuantizesEveryDecoderLinearAndBeatsRoundToNearest) {
  QuantizationReport report;
  const double gptq = logits_error(w4_gptq(), &report);
  const double rtn = logits_error(w4_gptq({}, /*gptq=*/false));
  std::printf("logits error W4 g32 asym: GPTQ %.4f  RTN %.4f\n", gptq, rtn);
  EXPECT_LT(gptq, rtn);
  int64_t gptq_layers = 0;
  for (const LayerRecord& r : report.layers()) {
    if (r.name.find("lm_head") != std::string::npos) {
      EXPECT_FALSE(r.quantized());  // blacklisted by default
    } else {
      EXPECT_EQ(r.algorithm, "gptq") << r.name;
      EXPECT_TRUE(r.fallback.empty()) << r.name << ": " << r.fallback;
      ++gptq_layers;
    }
  }
  EXPECT_EQ(gptq_layers, 2 * 7);

  // lm_head is processed too once it is not blacklisted (the head pass).
  PTQConfig with_head = w4_gptq();
  with_head.opname_blacklist.clear();
  logits_error(with_head, &report);
  const LayerRecord* head = report.find("lm_head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->algorithm, "gptq");
}

// Inside a layer, each group of linears sharing an input is quantized on inputs recomputed with the
// earlier groups already quantized: layer 0 by hand ({q,k,v} -> {o} -> {gate,up} -> {down}, names
// known here, not in the stage) gives the stage's codes bit for bit; o_proj on float inputs does
// not.
TEST(Gptq, QuantizesTrueSequentiallyWithInputsRecomputedAfterEachGroup) {
  register_builtin_algorithms();  // the stage is driven by hand here, with no Algorithm to register them
  const PTQConfig config = w4_gptq();
  const GptqOptions options = GptqOptions::from_config(config);
  TinyNet staged = tiny_net(), by_hand = tiny_net();
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = sample_calibration_tokens(
      gptq_calibration_file(), *staged.helper->create_tokenizer(), config.calibration);
  QuantizationReport report;
  LayerwiseOptions layerwise;
  layerwise.tokens = tokens;
  run_layerwise(*staged.net, *staged.helper, config, {make_gptq_stage(options)}, report, layerwise);

  auto layer0 = [](CausalLM& net) {
    std::map<std::string, std::shared_ptr<LinearImpl>> by_name;
    for (auto& linear : layer_linears(net, 0))
      by_name[linear->path().substr(linear->path().rfind('.') + 1)] = linear;
    return by_name;
  };
  auto staged_linears = layer0(*staged.net), hand_linears = layer0(*by_hand.net);
  const std::vector<std::vector<std::string>> groups = {
      {"q_proj", "k_proj", "v_proj"}, {"o_proj"}, {"gate_proj", "up_proj"}, {"down_proj"}};
  const auto all = collect_linears(*by_hand.net);
  auto index_of = [&](const std::string& name) {
    return static_cast<size_t>(std::find(all.begin(), all.end(), hand_linears.at(name)) -
                               all.begin());
  };
  const torch::Tensor o_float_inputs = linear_inputs(*by_hand.net, tokens)[index_of("o_proj")];
  for (const auto& group : groups) {
    const auto inputs = linear_inputs(*by_hand.net, tokens);  // with the earlier groups quantized
    for (const std::string& name : group) {
      auto& linear = hand_linears.at(name);
      const torch::Tensor w = linear->weight.clone();
      GptqResult r =
          gptq_quantize(w, hessian_of(inputs[index_of(name)]), spec(4, 32, false), options, name);
      EXPECT_TRUE(torch::equal(r.weight.data, staged_linears.at(name)->quantized->weight.data))
          << name;
      if (name == "o_proj") {
        GptqResult on_float =
            gptq_quantize(w, hessian_of(o_float_inputs), spec(4, 32, false), options, name);
        EXPECT_FALSE(torch::equal(on_float.weight.data, r.weight.data));
      }
      install_quantized_weight(*linear, r.weight, resolve_linear_scheme(config, *linear), "gptq",
                               report);
    }
  }
}

// The same config gives bit-identical codes, with and without act-order; act-order changes them.
TEST(Gptq, IsDeterministicWithAndWithoutActOrder) {
  auto quantize = [](const nlohmann::json& args) {
    TinyNet t = tiny_net();
    torch::NoGradGuard no_grad;
    PTQ algo(w4_gptq(args));
    algo.apply(*t.net, *t.helper);
    std::vector<QuantizedWeight> weights;
    for (auto& linear : collect_linears(*t.net))
      if (linear->quantized) weights.push_back(linear->quantized->weight);
    return weights;
  };
  auto same = [](const std::vector<QuantizedWeight>& a, const std::vector<QuantizedWeight>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!torch::equal(a[i].data, b[i].data) || !torch::equal(a[i].scale, b[i].scale) ||
          !torch::equal(a[i].zero_point, b[i].zero_point))
        return false;
    return true;
  };
  const auto plain = quantize({});
  ASSERT_EQ(plain.size(), 14u);
  EXPECT_TRUE(same(plain, quantize({})));
  const auto ordered = quantize({{"act_order", true}});
  EXPECT_TRUE(same(ordered, quantize({{"act_order", true}})));
  EXPECT_FALSE(same(plain, ordered));
  const auto ordered_static = quantize({{"act_order", true}, {"static_groups", true}});
  EXPECT_TRUE(same(ordered_static, quantize({{"act_order", true}, {"static_groups", true}})));
}

// A singular Hessian inside the real pass: embeddings of rank 2 make layer 0's q,k,v inputs rank 2
// (RMSNorm only rescales tokens), and damp_percent 1e-12 is too little for a float32 Cholesky of
// that. The retries are logged and noted in the report, never a crash.
TEST(Gptq, SingularLayerInputsIncreaseTheDampingAndAreReported) {
  TinyNet t = tiny_net();
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  for (auto& p : t.net->named_parameters())
    if (p.key() == "model.embed_tokens.weight")
      p.value().copy_(
          torch::randn({p.value().size(0), 2}).matmul(torch::randn({2, p.value().size(1)})));
  PTQ algo(w4_gptq({{"damp_percent", 1e-12}}));
  algo.apply(*t.net, *t.helper);
  EXPECT_TRUE(t.net->forward(eval_ids()).isfinite().all().item<bool>());
  std::vector<std::string> noted;
  for (const LayerRecord& r : algo.report().layers())
    if (r.fallback.find("dampening") != std::string::npos) noted.push_back(r.name);
  for (const char* name : {"q_proj", "k_proj", "v_proj"}) {
    const std::string path = std::string("model.layers.0.self_attn.") + name;
    EXPECT_NE(std::find(noted.begin(), noted.end(), path), noted.end()) << path;
  }
}

TEST(Gptq, ConvertedCheckpointRoundTripsWithIdenticalLogits) {
  for (const char* dtype : {"int4", "int3"}) {
    TinyNet t = tiny_net();
    torch::NoGradGuard no_grad;
    PTQConfig config = w4_gptq({{"act_order", true}});
    config.weight_quant_dtype = quant_dtype_from_bits(std::string(dtype) == "int4" ? 4 : 3);
    PTQ algo(config);
    algo.apply(*t.net, *t.helper);
    const torch::Tensor fake = t.net->forward(eval_ids());
    algo.convert(*t.net);
    const torch::Tensor logits = t.net->forward(eval_ids());
    EXPECT_TRUE(torch::allclose(fake, logits, 1e-4, 1e-4)) << dtype;
    const auto dir = testing::temp_dir(std::string("gptq_checkpoint_") + dtype);
    save_checkpoint(*t.net, dir);
    auto loaded = load_quantized(dir);
    EXPECT_TRUE(torch::equal(loaded->forward(eval_ids()), logits)) << dtype;
  }
}

}  // namespace
}  // namespace ptq
