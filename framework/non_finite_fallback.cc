#include "framework/non_finite_fallback.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"

namespace ptq {
namespace {

// Records whether a linear's kernel turned finite inputs into non-finite outputs.
class FiniteOutputProbe : public LinearObserver {
 public:
  explicit FiniteOutputProbe(LinearImpl& linear) : linear_(linear) {}
  void observe(const torch::Tensor& x) override {
    if (broken || !linear_.kernel() || !torch::isfinite(x).all().item<bool>()) return;
    broken = !torch::isfinite(linear_.kernel()->forward(x)).all().item<bool>();
  }
  bool broken = false;

 private:
  LinearImpl& linear_;
};

std::string scheme_name(const LinearImpl& linear) {
  return linear.quantized ? linear.quantized->scheme().name() : "float";
}

}  // namespace

std::vector<std::shared_ptr<LinearImpl>> find_non_finite_linears(
    const std::vector<std::shared_ptr<LinearImpl>>& linears, const std::function<torch::Tensor()>& run) {
  std::vector<std::shared_ptr<FiniteOutputProbe>> probes;
  for (auto& linear : linears) {
    probes.push_back(std::make_shared<FiniteOutputProbe>(*linear));
    linear->add_observer(probes.back());
  }
  try {
    run();
  } catch (...) {
    for (auto& linear : linears) linear->clear_observers();
    throw;
  }
  std::vector<std::shared_ptr<LinearImpl>> culprits;
  for (size_t i = 0; i < linears.size(); ++i) {
    linears[i]->clear_observers();
    if (probes[i]->broken) culprits.push_back(linears[i]);
  }
  return culprits;
}

void fail_non_finite_layer(int64_t layer, const std::vector<std::shared_ptr<LinearImpl>>& culprits,
                           const std::string& why_no_fallback) {
  std::vector<std::string> names;
  for (const auto& linear : culprits) names.push_back(fmt::format("{} ({})", linear->path(), scheme_name(*linear)));
  fail(
      "calibration: decoder layer {} produced non-finite outputs (NaN or Inf) from finite inputs after "
      "quantization; {}{}",
      layer,
      names.empty() ? std::string("none of its linears did (the attention or a norm overflowed in the compute dtype)")
                    : fmt::format("these quantized linears did: {} (exclude them with opname_blacklist or a "
                                  "layer_policies skip)",
                                  fmt::join(names, ", ")),
      why_no_fallback.empty() ? "" : "; " + why_no_fallback);
}

std::string float_fallback_obstacle(const PTQConfig& config, const std::string& name,
                                    const std::vector<std::shared_ptr<LinearImpl>>& all_linears) {
  for (const auto& other : all_linears)
    if (other->path() != name && other->path().find(name) != std::string::npos)
      return fmt::format(
          "keeping \"{}\" in float is not possible: an opname_blacklist entry for it would also exclude \"{}\"", name,
          other->path());
  PTQConfig trial = config;
  trial.opname_blacklist.push_back(name);
  try {
    trial.scheme_for(name);
  } catch (const Error& e) {
    return fmt::format("keeping \"{}\" in float is not possible: {}", name, e.what());
  }
  return "";
}

void record_non_finite_fallback(const LinearImpl& linear, const std::string& failed_scheme,
                                QuantizationReport& report) {
  // The rounding stage of the second pass recorded the layer in float (blacklisted); a stage that
  // records nothing leaves it to us.
  const LayerRecord* existing = report.find(linear.path());
  if (!existing || existing->quantized()) record_float_layer(linear, "", report);
  LayerRecord r = *report.find(linear.path());
  r.fallback = fmt::format("{} gave non-finite outputs (NaN or Inf) from finite inputs: kept in float (an "
                           "opname_blacklist entry of the saved config)",
                           failed_scheme);
  r.non_finite_fallback = true;
  report.record(std::move(r));
}

PTQConfig config_with_float_fallbacks(const PTQConfig& config, const QuantizationReport& report) {
  PTQConfig out = config;
  for (const auto& r : report.layers()) {
    if (!r.non_finite_fallback) continue;
    auto& list = out.opname_blacklist;
    if (std::find(list.begin(), list.end(), r.name) == list.end()) list.push_back(r.name);
  }
  return out;
}

ParameterSnapshot::ParameterSnapshot(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& p : module.parameters(/*recurse=*/true)) saved_.emplace_back(p, p.detach().clone());
}

void ParameterSnapshot::restore() {
  torch::NoGradGuard no_grad;
  // set_data keeps each parameter's TensorImpl, so modules (and a Linear's `weight` member, which
  // replace_weight points at the parameter) see the restored values. The copy's storage is used as
  // is: a snapshot restores once.
  for (auto& [parameter, copy] : saved_) parameter.set_data(copy);
  saved_.clear();
}

void reset_to_float(LinearImpl& linear) {
  linear.quantized.reset();
  linear.set_kernel(nullptr);
  linear.clear_observers();
}

}  // namespace ptq
