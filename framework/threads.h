// LibTorch starts with one intra-op thread on some machines; ptq uses every core unless told otherwise.
#pragma once

namespace ptq {

// n <= 0 means "all hardware threads". Returns the number of threads in effect.
int configure_threads(int n = 0);

}  // namespace ptq
