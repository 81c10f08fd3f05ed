// The NaN/Inf guard's answer to a decoder layer whose quantized form turns finite calibration inputs
// into non-finite outputs (docs/ROBUSTNESS.md, "NaN/Inf guard"): find the linears whose kernels do
// it, keep them in float, quantize the layer again, and say so in the report and in the saved config.
//
// Why float: it is the one scheme that cannot be the cause (the float layer's inputs are finite and
// its weights were checked), and it needs no new checkpoint layout -- a float linear is what
// opname_blacklist already makes, so DEPLOY rebuilds the structure from the saved config alone.
// A lighter quantization (W8 for a W4 layer) could still overflow and would need a layer policy,
// which the user's own policies may contradict.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/linear.h"
#include "framework/ptq_config.h"
#include "framework/quantization_report.h"

namespace ptq {

// The linears of `linears` whose kernels turn finite inputs into non-finite outputs, found by one
// run of the layer (`run`) with a probe on each.
std::vector<std::shared_ptr<LinearImpl>> find_non_finite_linears(
    const std::vector<std::shared_ptr<LinearImpl>>& linears, const std::function<torch::Tensor()>& run);

// The guard's error: decoder layer `layer` produced non-finite outputs; names `culprits` (or says
// none of the linears did). `why_no_fallback` ends the message when it is not empty.
[[noreturn]] void fail_non_finite_layer(int64_t layer, const std::vector<std::shared_ptr<LinearImpl>>& culprits,
                                        const std::string& why_no_fallback = "");

// Why `name` cannot be kept in float by an exact-name opname_blacklist entry of `config` ("" when it
// can): another linear of `all_linears` contains the name (the entry would exclude it too), or a
// layer policy sets the layer's scheme (scheme_for refuses the contradiction).
std::string float_fallback_obstacle(const PTQConfig& config, const std::string& name,
                                    const std::vector<std::shared_ptr<LinearImpl>>& all_linears);

// Marks `linear` in `report` as kept in float by the guard: its float record (made by the stage that
// left it in float, else here) gets the note and the flag; `failed_scheme` is the scheme that
// overflowed.
void record_non_finite_fallback(const LinearImpl& linear, const std::string& failed_scheme,
                                QuantizationReport& report);

// `config` with every linear the report flags as a non-finite fallback appended to opname_blacklist
// by its exact name (in report order, once): the config a checkpoint must carry so that DEPLOY
// rebuilds what the run produced, and the one the rest of the run resolves schemes with.
PTQConfig config_with_float_fallbacks(const PTQConfig& config, const QuantizationReport& report);

// A copy of a module's parameters, to put a layer back to its float state before it is quantized
// again (stages change weights and norms in place).
class ParameterSnapshot {
 public:
  explicit ParameterSnapshot(torch::nn::Module& module);
  // Every parameter gets its copied values back (set_data: the modules keep their tensors).
  void restore();

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // parameter, copy
};

// Puts `linear` back to float: no quantized form, no kernel, no observers.
void reset_to_float(LinearImpl& linear);

}  // namespace ptq
