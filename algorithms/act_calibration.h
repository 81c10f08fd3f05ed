// ActCalibration: the static per-tensor int8 activation ranges of W8A8-static layers (the input_scale,
// and input_zero_point when act_symmetric is false). PTQ runs its stage after rounding, so the ranges
// are those of the inputs the fake-quantized network really produces; once a layer's scales are set its
// fake-quant kernel quantizes activations too, and later layers calibrate on that.
//
// Observers (config act_observer), all over every calibration token of the layer's input:
//   minmax      lo = min x, hi = max x (exact)
//   percentile  lo/hi = the (100 - p) / p percentiles of x (symmetric: the p percentile of |x|), p =
//               act_percentile; clips the rare extreme values that would waste the int8 range
//   mse         the clip ratio r in {1.00, 0.98, ..., 0.20} of the min/max range whose fake-quantized
//               values have the least squared error against x
// Percentile and MSE work on a strided sample of at most 65536 values per observed batch (exact min/max
// are kept besides), which bounds memory whatever the calibration size.
// Then static_activation_qparams (framework/activation_quant.h) turns [lo, hi] into scale / zero point.
#pragma once

#include "framework/activation_quant.h"
#include "framework/algorithm.h"
#include "framework/linear.h"

namespace ptq {

class ActCalibration : public Algorithm {
 public:
  explicit ActCalibration(PTQConfig config);
  std::string name() const override { return "act_calibration"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

std::shared_ptr<LayerStage> make_act_calibration_stage();

// The observer behind the stage (public for tests and report programs).
class ActRangeObserver : public LinearObserver {
 public:
  ActRangeObserver(ActObserver kind, double percentile, bool symmetric);
  void observe(const torch::Tensor& x) override;
  // The calibrated range [lo, hi] (lo <= 0 <= hi) and its int8 parameters. Throws when nothing was seen.
  std::pair<double, double> range() const;
  ActivationQParams qparams() const;

 private:
  ActObserver kind_;
  double percentile_;
  bool symmetric_;
  double min_ = 0, max_ = 0;
  bool seen_ = false;
  std::vector<torch::Tensor> samples_;  // float32, flat, CPU
};

}  // namespace ptq
