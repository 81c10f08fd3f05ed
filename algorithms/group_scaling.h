// Function-preserving per-channel rescaling of a ScalingGroup (framework/network_helper.h), the one
// transformation behind SmoothQuant's smoothing and the outlier injection used to test it:
//
//   producer output channel j  /= s_j      (a norm's weight and bias, or a linear's row j and bias j)
//   consumer input column j    *= s_j      (every consumer linear's weight[:, j])
//
// so consumer(producer(x)) is unchanged in exact arithmetic (float32: ~1e-6 relative). Written only
// against ScalingGroup, so it works for every model family whose NetworkHelper lists its groups.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "framework/algorithm.h"
#include "framework/linear.h"
#include "framework/network_helper.h"

namespace ptq {

// Applies s (float [C], positive, C = the group's channel count) to the group in place. Throws naming
// the group when a consumer is already quantized (its weight no longer is the float weight to scale)
// or the sizes disagree.
void scale_scaling_group(ScalingGroup& group, const torch::Tensor& s);

// Running per-input-channel max |x| of a linear's input (SmoothQuant's activation statistic).
class ChannelAbsMaxObserver : public LinearObserver {
 public:
  void observe(const torch::Tensor& x) override;
  // float32 [in_features]; undefined until something was observed.
  const torch::Tensor& absmax() const { return absmax_; }

 private:
  torch::Tensor absmax_;
};

// max over the group's consumers of |W[:, j]|: float32 [C] (SmoothQuant's weight statistic).
torch::Tensor consumer_weight_absmax(const ScalingGroup& group);

// ---- outlier injection (a test and report tool, not a quantization algorithm) ----------------------
//
// Small models lack the activation outlier channels that LLMs above ~6.7B parameters have (Dettmers et
// al. 2022; SmoothQuant, Fig. 4), so W8A8 results on them say little about outliers. This makes some:
// in every decoder layer, for each group whose producer is a norm (producer weight is 1-D), `channels`
// seeded random channels of the norm's weight are multiplied by `factor` and the matching input columns
// of its consumers divided by it (scale_scaling_group with s_j = 1/factor). The float network computes
// the same function (logits equal to float32 rounding), but its linears' inputs now have channels
// `factor` times larger than the rest, which is what breaks per-tensor activation quantization.
struct OutlierInjection {
  int64_t channels = 8;
  double factor = 50.0;
  uint64_t seed = 0;
};
// Returns the number of groups changed.
int64_t inject_outliers(CausalLM& net, NetworkHelper& helper, const OutlierInjection& options = {});

}  // namespace ptq
