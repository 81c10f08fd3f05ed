// The int8 code range and the zero-scale rule that activation and KV-cache quantization share.
#pragma once

#include <torch/types.h>

namespace ptq {

inline constexpr double kInt8CodeMin = -128.0;
inline constexpr double kInt8CodeMax = 127.0;

// A zero scale (an all-zero row or range) becomes 1: its codes are then 0 and dequantize to exact zeros.
inline torch::Tensor nonzero_scale(const torch::Tensor& s) { return torch::where(s.eq(0), torch::ones_like(s), s); }

}  // namespace ptq
