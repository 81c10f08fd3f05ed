#include "algorithms/act_calibration.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "algorithms/builtin_algorithms.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"

namespace ptq {
namespace {

constexpr int64_t kSamplePerBatch = 65536;

double kth_fraction(const torch::Tensor& sorted, double fraction) {
  const int64_t n = sorted.size(0);
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::llround(fraction * (n - 1))), 0, n - 1);
  return sorted[k].item<double>();
}

class ActCalibrationStage : public LayerStage {
 public:
  std::string name() const override { return "act_calibration"; }
  bool needs_calibration_data() const override { return true; }

  void process(LayerContext& ctx) override {
    if (!ctx.has_data()) return;
    std::vector<std::pair<std::shared_ptr<LinearImpl>, std::shared_ptr<ActRangeObserver>>> observed;
    for (auto& linear : ctx.linears) {
      if (!linear->quantized || linear->quantized->act != ActQuant::kInt8PerTensorStatic) continue;
      auto observer = std::make_shared<ActRangeObserver>(ctx.config.act_observer, ctx.config.act_percentile,
                                                         linear->quantized->act_symmetric);
      linear->add_observer(observer);
      observed.emplace_back(linear, observer);
    }
    if (observed.empty()) return;
    ctx.run_layer();
    for (auto& [linear, observer] : observed) {
      linear->clear_observers();
      ActivationQParams q;
      try {
        q = observer->qparams();
      } catch (const Error& e) {
        fail("act_calibration: layer \"{}\": {}", linear->path(), e.what());
      }
      // The layout DEPLOY builds and the checkpoint stores: float32 [1], int8 [1].
      const torch::Device device = linear->quantized->weight.data.device();
      linear->quantized->input_scale = q.scale.reshape({1}).to(device, torch::kFloat32);
      linear->quantized->input_zero_point =
          q.zero_point.defined() ? q.zero_point.reshape({1}).to(device, torch::kInt8) : torch::Tensor();
      refresh_fake_quant_kernel(*linear);
    }
  }
};

}  // namespace

ActRangeObserver::ActRangeObserver(ActObserver kind, double percentile, bool symmetric)
    : kind_(kind), percentile_(percentile), symmetric_(symmetric) {}

void ActRangeObserver::observe(const torch::Tensor& x) {
  torch::Tensor flat = x.detach().reshape({-1}).to(torch::kFloat32);
  if (flat.numel() == 0) return;
  const double lo = flat.min().item<double>(), hi = flat.max().item<double>();
  min_ = seen_ ? std::min(min_, lo) : lo;
  max_ = seen_ ? std::max(max_, hi) : hi;
  seen_ = true;
  if (kind_ == ActObserver::kMinMax) return;
  // A stride coprime with the channel count, so every channel is represented in the sample.
  int64_t stride = std::max<int64_t>(1, (flat.numel() + kSamplePerBatch - 1) / kSamplePerBatch);
  while (stride > 1 && std::gcd(stride, x.size(-1)) != 1) ++stride;
  samples_.push_back(flat.slice(0, 0, flat.numel(), stride).cpu().clone());
}

std::pair<double, double> ActRangeObserver::range() const {
  PTQ_CHECK(seen_, "the activation observer saw no input");
  const double lo = std::min(min_, 0.0), hi = std::max(max_, 0.0);
  if (kind_ == ActObserver::kMinMax || samples_.empty()) return {lo, hi};
  const torch::Tensor sample = torch::cat(samples_);
  if (kind_ == ActObserver::kPercentile) {
    const double p = percentile_ / 100.0;
    if (symmetric_) {
      const double a = kth_fraction(std::get<0>(sample.abs().sort()), p);
      return {-a, a};
    }
    const torch::Tensor sorted = std::get<0>(sample.sort());
    return {std::min(kth_fraction(sorted, 1.0 - p), 0.0), std::max(kth_fraction(sorted, p), 0.0)};
  }
  // MSE: the clip ratio whose quantize-dequantize error on the sample is smallest.
  double best_error = std::numeric_limits<double>::infinity(), best_ratio = 1.0;
  const double absmax = std::max(-lo, hi);
  for (int step = 0; step <= 40; ++step) {
    const double r = 1.0 - 0.02 * step;
    const ActivationQParams q = symmetric_ ? static_activation_qparams(-r * absmax, r * absmax, true)
                                           : static_activation_qparams(r * lo, r * hi, false);
    const double error = (fake_quantize_per_tensor_int8(sample, q.scale, q.zero_point) - sample).pow(2).sum().item<double>();
    if (error < best_error) best_error = error, best_ratio = r;
  }
  if (symmetric_) return {-best_ratio * absmax, best_ratio * absmax};
  return {best_ratio * lo, best_ratio * hi};
}

ActivationQParams ActRangeObserver::qparams() const {
  const auto [lo, hi] = range();
  return static_activation_qparams(lo, hi, symmetric_);
}

ActCalibration::ActCalibration(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> ActCalibration::stages() const { return {make_act_calibration_stage()}; }

std::shared_ptr<LayerStage> make_act_calibration_stage() { return std::make_shared<ActCalibrationStage>(); }

}  // namespace ptq
