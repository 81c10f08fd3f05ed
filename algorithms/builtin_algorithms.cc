#include "algorithms/builtin_algorithms.h"

#include <mutex>

#include "algorithms/ptq.h"
#include "algorithms/round_to_nearest.h"
#include "framework/backend.h"

namespace ptq {

void register_builtin_algorithms() {
  register_builtin_backends();
  register_algorithm({"rtn", "round to nearest: no calibration data (W8A16, W4A16/W3A16 per group, W8A8 dynamic)",
                      [](const PTQConfig& c) { return std::make_unique<RoundToNearest>(c); }});
  register_algorithm({"ptq", "composes what the config asks for: outlier suppression, rounding, activation/KV calibration",
                      [](const PTQConfig& c) { return std::make_unique<PTQ>(c); }});
}

void ensure_builtins_registered() {
  static std::once_flag once;
  std::call_once(once, register_builtin_algorithms);
}

}  // namespace ptq
