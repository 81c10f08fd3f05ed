// The explicit list of built-in algorithms (see framework/algorithm.h for why it is explicit).
#pragma once

namespace ptq {

// register_builtin_algorithms() and register_builtin_backends(), once per process; every built-in
// algorithm's constructor calls it, so `ptq::RoundToNearest algo(cfg)` works with no set-up.
void ensure_builtins_registered();

}  // namespace ptq
