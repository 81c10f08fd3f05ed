#include "algorithms/builtin_algorithms.h"

#include <mutex>

#include "algorithms/act_calibration.h"
#include "algorithms/awq.h"
#include "algorithms/gptq.h"
#include "algorithms/kv_cache_int8.h"
#include "algorithms/ptq.h"
#include "algorithms/round_to_nearest.h"
#include "algorithms/smooth_quant.h"
#include "framework/backend.h"

namespace ptq {

void register_builtin_algorithms() {
  register_builtin_backends();
  register_algorithm({"rtn", "round to nearest: no calibration data (W8A16, W4A16/W3A16 per group, W8A8 dynamic)",
                      [](const PTQConfig& c) { return std::make_unique<RoundToNearest>(c); }});
  register_algorithm({"ptq", "composes what the config asks for: outlier suppression, rounding, activation/KV calibration",
                      [](const PTQConfig& c) { return std::make_unique<PTQ>(c); }});
  register_algorithm({"gptq", "GPTQ: Hessian-aware rounding, true-sequential within each layer (W4A16/W3A16, W8A16)",
                      [](const PTQConfig& c) { return std::make_unique<Gptq>(c); }});
  register_algorithm({"smooth_quant", "SmoothQuant: migrates activation outliers into the weights (alpha), before W8A8",
                      [](const PTQConfig& c) { return std::make_unique<SmoothQuant>(c); }});
  register_algorithm({"awq", "AWQ: activation-aware per-channel scales and clip search before weight-only rounding",
                      [](const PTQConfig& c) { return std::make_unique<Awq>(c); }});
  register_algorithm({"act_calibration", "static per-tensor int8 activation scales (minmax | percentile | mse)",
                      [](const PTQConfig& c) { return std::make_unique<ActCalibration>(c); }});
  register_algorithm({"kv_cache_int8", "int8 KV cache: static per-channel scales from calibration, or dynamic per-token",
                      [](const PTQConfig& c) { return std::make_unique<KVCacheInt8>(c); }});
}

void ensure_builtins_registered() {
  static std::once_flag once;
  std::call_once(once, register_builtin_algorithms);
}

}  // namespace ptq
