// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers"; reference: IST-DASLab/gptq): rounds each weight column in turn and spreads its
// rounding error over the columns not yet quantized, weighted by the inverse Hessian H = 2/n sum x
// x^T of the layer's calibration inputs, so the layer output W X moves as little as possible.
//
// Inside a decoder layer the linears are quantized true-sequentially, one group of linears that
// share an input at a time (Llama: q,k,v -> o -> gate,up -> down); the groups are found by watching
// which linears receive the same input tensor, so no model family is named here. Each group's
// Hessian comes from running the layer with the earlier groups already fake-quantized. Codes,
// scales and zero points follow quantize_weight's conventions (compute_qparams), so the result is
// an ordinary QuantizedWeight.
#pragma once

#include <string>

#include "framework/algorithm.h"
#include "framework/quantized_weight.h"

namespace ptq {

// algo_args "gptq" (framework/ptq_config.cc has the defaults, docs/CONFIG.md the meaning).
struct GptqOptions {
  double damp_percent = 0.01;  // dampening added to diag(H), as a fraction of mean(diag(H))
  int64_t block_size =
      128;  // columns whose updates to later columns are applied together (lazy batch)
  bool act_order = false;  // quantize columns by decreasing diag(H)
  // Group scales from the weights before any update (the reference's static_groups). When false,
  // a group's parameters are computed from its current (error-updated) weights the first time one
  // of its columns is quantized. Groups are always columns c / group_size of the original order
  // (the checkpoint format has no per-column group index), so with act_order and dynamic groups a
  // group is fixed when its first column in activation order comes up.
  bool static_groups = false;
  // Each group's range (per row) searched for the smallest rounding error instead of min/max: the
  // reference's `mse` option (see searched_range_params in gptq.cc). On by default, unlike the
  // reference: on ptq-small-32m it shrinks GPTQ's W4 g128 gap from +2.27% to +1.40% and W3's from
  // +12.6% to +5.7% (docs/ACCURACY.md) for ~1.7x the quantization time.
  bool mse = true;

  static GptqOptions from_config(const PTQConfig& config);
};

struct GptqResult {
  QuantizedWeight weight;
  double damp = 0.0;         // the dampening finally added to the diagonal
  int damp_increases = 0;    // how many times it was multiplied by 10 because Cholesky failed
  int64_t dead_columns = 0;  // inputs that were always 0 (H_ii = 0): their weights are set to 0
  // Non-empty when the Hessian stayed not positive definite through every damp increase: `weight`
  // is then plain round-to-nearest of the input weight (same scheme and layout), and this says why.
  std::string rtn_fallback;
};

// Quantizes `weight` [out, in] (any float dtype and device) per `spec` (bits, group size, symmetry;
// precomputed scales and clip ratios are not accepted) using `hessian` [in, in] (float, sum-scaled
// as the caller likes: only its ratios matter). `layer` names the linear in errors. All math is
// float32 on the weight's device.
GptqResult gptq_quantize(const torch::Tensor& weight, const torch::Tensor& hessian,
                         const WeightQuantSpec& spec, const GptqOptions& options,
                         const std::string& layer = "weight");

// The statistic the GPTQ stage collects for a group of linears sharing an input: sum x x^T over
// every token, accumulated in float32 whatever the compute dtype, on the inputs' device.
class GptqHessianObserver : public LinearObserver {
 public:
  void observe(const torch::Tensor& x) override;
  int64_t tokens() const { return tokens_; }
  // H = 2/n sum x x^T (the paper's scaling; GPTQ itself only needs ratios).
  torch::Tensor hessian() const;

 private:
  torch::Tensor sum_;
  int64_t tokens_ = 0;
};

class Gptq : public Algorithm {
 public:
  explicit Gptq(PTQConfig config);
  std::string name() const override { return "gptq"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

// The stage alone (PTQ composes it after outlier suppression).
std::shared_ptr<LayerStage> make_gptq_stage(const GptqOptions& options);

}  // namespace ptq
