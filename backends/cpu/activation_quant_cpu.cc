#include "backends/cpu/activation_quant_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace ptq::cpu {
namespace {

// Round half to even for |v| <= 2^22: adding and subtracting 1.5 * 2^23 leaves no fraction bits, and the
// default rounding mode (nearest, ties to even) does the rounding. Vectorizes, unlike std::nearbyint.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// Clamping before rounding equals rounding before clamping: the bounds are integers and rounding is
// monotone. Clamping first also keeps |v| small enough for round_half_even.
inline int8_t to_code(float v) { return static_cast<int8_t>(round_half_even(std::min(std::max(v, -128.0f), 127.0f))); }

void quantize_row(const float* x, int64_t K, float s, float z, int8_t* q, int32_t* code_sum) {
  int32_t sum = 0;
  if (z == 0.0f) {
    for (int64_t k = 0; k < K; ++k) q[k] = to_code(x[k] / s);
  } else {
    for (int64_t k = 0; k < K; ++k) q[k] = to_code(x[k] / s + z);
  }
  if (code_sum) {
    for (int64_t k = 0; k < K; ++k) sum += q[k];
    *code_sum = sum;
  }
}

// Rows per parallel task: enough work (~16k elements) to pay for the hand-off.
int64_t row_grain(int64_t K) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)); }

}  // namespace

void quantize_rows_per_token(const float* x, int64_t M, int64_t K, bool symmetric, const RowQuantOutput& out) {
  at::parallel_for(0, M, row_grain(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* row = x + m * K;
      float s, z = 0.0f;
      if (symmetric) {
        float amax = 0.0f;
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
        s = amax / 127.0f;
        if (s == 0.0f) s = 1.0f;
      } else {
        float lo = 0.0f, hi = 0.0f;  // the range always includes 0
        for (int64_t k = 0; k < K; ++k) {
          lo = std::min(lo, row[k]);
          hi = std::max(hi, row[k]);
        }
        s = (hi - lo) / 255.0f;
        if (s == 0.0f) s = 1.0f;
        z = round_half_even(std::min(std::max(-128.0f - lo / s, -128.0f), 127.0f));
      }
      out.scale[m] = s;
      out.zero_point[m] = static_cast<int32_t>(z);
      quantize_row(row, K, s, z, out.codes + m * K, out.code_sum ? out.code_sum + m : nullptr);
    }
  });
}

void quantize_rows_static(const float* x, int64_t M, int64_t K, float scale, int32_t zero_point,
                          const RowQuantOutput& out) {
  out.scale[0] = scale;
  out.zero_point[0] = zero_point;
  at::parallel_for(0, M, row_grain(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      quantize_row(x + m * K, K, scale, static_cast<float>(zero_point), out.codes + m * K,
                   out.code_sum ? out.code_sum + m : nullptr);
    }
  });
}

}  // namespace ptq::cpu
