// AWQ (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"; references: mit-han-lab/llm-awq, AutoAWQ): before weight-only rounding, scale each
// scaling group's input channels so the channels that carry large activations keep more precision, then
// clip each weight group's range where that lowers the output error.
//
// Per decoder layer, on the float layer's calibration inputs:
//   1. scale search, per ScalingGroup (framework/network_helper.h; Llama: norm -> q,k,v; v -> o when
//      there is no GQA sharing; norm -> gate,up; up -> down):
//        x_mean_j = mean |x_j| over every calibration token of the group's input
//        w_mean_j = mean over the consumers' rows of |W_rj| / max |W| of W_rj's quantization group
//        s = x_mean^a / (w_mean^(1-a) + 1e-4)   (duo scaling; plain: s = x_mean^a), clamped >= 1e-4,
//            divided by sqrt(max s * min s), for a = 0, 1/grid, ..., (grid-1)/grid -- plus s = 1, so
//            the search never picks something worse than plain rounding on its own loss
//        loss(s) = mean squared difference between the group's inspected block (ScalingGroup::inspect:
//            the whole attention for q,k,v, the MLP for gate,up, the consumer itself for v -> o and
//            up -> down) on the float weights and on consumer weights fake_quant(W * s) / s
//      and the best s is folded into the producer and consumers (scale_scaling_group: the float network
//      computes the same function).
//   2. clip search (clip_search), per linear except attention query/key projections (their error
//      reaches the output through the softmax, which this per-group output loss does not see): for
//      every output channel and quantization group, the ratio r in {1, 1 - 1/grid, ..., 1 -
//      clip_max_shrink} whose clipped, fake-quantized group gives the least squared error of that
//      group's partial dot products on clip_tokens evenly strided calibration tokens. The weight is
//      clamped in place to [r lo, r hi] (lo, hi: the group's min/max, 0 included), so the rounding stage
//      that follows (RTN: exactly the clipped quantization; GPTQ) starts from the clipped weights.
// Rounding itself is the next stage's job: PTQ composes awq -> rtn | gptq. Awq applied on its own (like
// SmoothQuant) only transforms the float weights.
//
// Differences from AutoAWQ, and why: the s = 1 candidate (AutoAWQ's grid with duo scaling never tries
// "no scaling"); clipping shrinks min and max by the same ratio (AutoAWQ clamps to +-r max|w|, which is
// the same for symmetric quantization and for asymmetric shrinks only the larger side); the next layer's
// inputs are the outputs of this layer after rounding (the driver's rule; AutoAWQ uses the float ones).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/algorithm.h"
#include "framework/quantized_weight.h"

namespace ptq {

// algo_args "awq" (defaults in framework/ptq_config.cc, meanings in docs/CONFIG.md).
struct AwqOptions {
  int64_t grid = 20;             // scale exponents a = i / grid, i < grid
  bool duo_scaling = true;       // weight statistic in the scales, as AutoAWQ's default
  bool clip_search = true;
  double clip_max_shrink = 0.45;  // clip ratios 1 - i / grid down to 1 - clip_max_shrink
  int64_t clip_tokens = 512;      // calibration tokens the clip search uses (strided subsample)

  static AwqOptions from_config(const PTQConfig& config);
};

class Awq : public Algorithm {
 public:
  explicit Awq(PTQConfig config);
  std::string name() const override { return "awq"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

std::shared_ptr<LayerStage> make_awq_stage(const AwqOptions& options);

// Step 2 for one weight: the clip ratio per [out, n_groups] (float32) that minimises, per output channel
// and group, the mean over the rows of `inputs` [n, in] of (x_g . (fq(w_g) - w_g))^2, over the ratios
// 1 - i / grid for i = 0 .. floor(max_shrink * grid). Public for tests.
torch::Tensor search_clip_ratios(const torch::Tensor& weight, const torch::Tensor& inputs, const WeightQuantSpec& spec,
                                 int64_t grid, double max_shrink);

}  // namespace ptq
