// SmoothQuant (Xiao et al. 2023): migrates activation outliers into the weights before W8A8 rounding.
// Per scaling group (framework/network_helper.h), from calibration statistics taken on the float layer:
//
//   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
//
// X_j: input channel j of the group's consumers over all calibration tokens; W_j: column j of every
// consumer's weight (max over all of them). Then producer channel j /= s_j, consumer column j *= s_j
// (group_scaling.h), which leaves the float network's function unchanged. s_j is 1 where either max
// is 0, and is clamped to >= 1e-5 so a channel never collapses.
//
// algo_args "smooth_quant": alpha (default 0.5), smooth_vo and smooth_up_down (default false). By
// default only groups whose producer is a norm are smoothed (norm -> q,k,v; norm -> gate,up): that is
// where LLM outliers are and what the paper does. Linear -> linear groups are told apart without model
// knowledge: a linear producer fed by the layer's first norm group is attention-side (v -> o), any other
// is MLP-side (up -> down).
#pragma once

#include "framework/algorithm.h"

namespace ptq {

class SmoothQuant : public Algorithm {
 public:
  explicit SmoothQuant(PTQConfig config);
  std::string name() const override { return "smooth_quant"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

struct SmoothQuantOptions {
  double alpha = 0.5;
  bool smooth_vo = false;
  bool smooth_up_down = false;
  // config.algo_args_for("smooth_quant").
  static SmoothQuantOptions from_config(const PTQConfig& config);
};

std::shared_ptr<LayerStage> make_smooth_quant_stage(const SmoothQuantOptions& options);

}  // namespace ptq
