// Sizes padded to the CPU kernels' tiles (key blocks, K super-blocks, cache capacities).
#pragma once

#include <cstdint>

namespace ptq::cpu {

// The smallest multiple of m that is >= v (v >= 0, m > 0).
constexpr int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace ptq::cpu
