// Int8 quantization of float activation rows for the W8A8 kernels: the numerics of
// framework/activation_quant.h (the reference), bit for bit, in plain loops instead of a chain of LibTorch
// ops (a dozen passes over the input and as many allocations, which cost as much as the int8 matmul at
// M = 1). Every step is the same float32 operation as the reference, in the same order:
//   per-token sym:   s = (amax == 0 ? 1 : amax / 127);  q = clamp(round(x / s), -128, 127)
//   per-token asym:  lo = min(min, 0), hi = max(max, 0), s = (hi - lo) / 255 (0 -> 1),
//                    z = round(clamp(-128 - lo / s, -128, 127)), q = clamp(round(x / s + z), -128, 127)
//   static:          s and z given, q as above
// round() is round-half-to-even, as torch::round.
#pragma once

#include <cstdint>

namespace ptq::cpu {

struct RowQuantOutput {
  int8_t* codes = nullptr;     // [M, K]
  float* scale = nullptr;      // [M] (per token) or [1] (static: filled with the given scale)
  int32_t* zero_point = nullptr;  // same length as scale, 0 when symmetric
  int32_t* code_sum = nullptr;    // [M] sum of each row's codes, or nullptr when not needed
};

// x: float32 [M, K], row-major, contiguous. Rows are processed in parallel (at::parallel_for).
void quantize_rows_per_token(const float* x, int64_t M, int64_t K, bool symmetric, const RowQuantOutput& out);
void quantize_rows_static(const float* x, int64_t M, int64_t K, float scale, int32_t zero_point,
                          const RowQuantOutput& out);

}  // namespace ptq::cpu
