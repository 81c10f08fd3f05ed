// The named tolerances of ptq, in one place (STYLE.md: tolerances that mean something), and the error
// measures they are applied to. Tests, benchmarks' self-checks and `ptq inspect` use these names, never
// bare constants.
#pragma once

#include <torch/types.h>

#include <cmath>
#include <limits>

namespace ptq::tol {

// ---- float kernels: relative tolerance per compute dtype (CTranslate2's numbers) ---------------------
// fp32: reordered accumulation over K ~ 4096 terms moves results by a few ulps times sqrt(K); 1e-5 relative
// (with an absolute floor of the same size for results near zero) covers that and nothing more.
inline constexpr double kFp32Rel = 1e-5;
// fp16 has an 11-bit significand (ulp 2^-10 ~ 1e-3 at 1.0); a matmul rounding its output and maybe its
// partial sums lands within ~1e-2 relative.
inline constexpr double kFp16Rel = 1e-2;
// bf16 has an 8-bit significand (ulp 2^-7 ~ 8e-3); 4e-2 allows a few ulps.
inline constexpr double kBf16Rel = 4e-2;

// ---- integer kernels ------------------------------------------------------------------------------
// Integer arithmetic (int8 x int8 -> int32 accumulation, packing, code computation) must be bit-exact:
// compare with torch::equal, tolerance zero.
inline constexpr double kIntegerExact = 0.0;
// Quantize -> dequantize reproduces each element within half a step (scale / 2) when nothing is
// clipped (round to nearest). The 1e-4 step of slack absorbs float32 rounding of w / scale and of
// (q - z) * scale: |q - z| <= 255 codes times ~6e-8 relative each, i.e. below 3e-5 of a step.
inline constexpr double kHalfStep = 0.5 + 1e-4;
// An optimized kernel may round differently from the reference at exact ties or after a reordered float
// division; its codes/results may then differ by one quantization step (FBGEMM's isNear), never more.
inline constexpr double kOneStep = 1.0 + 1e-4;

// ---- kernel vs reference, and quality -------------------------------------------------------------
// Normalized MSE of an optimized kernel against its reference twin in the same dtype (ggml's nmse test
// threshold for kernels that reorder float sums); larger means the kernel computes something else.
inline constexpr double kKernelNmse = 5e-4;
// Attention over a dequantized int8 KV cache vs float attention. Measured on Gaussian data whose key
// channels vary by e^N(0,1) (tests/core/test_reference_kernels.cc): ~8e-5 static per-channel, ~2e-4
// dynamic per-token; 1e-3 leaves room for other data and still catches a wrong scale or layout (those
// give nmse of order 1).
inline constexpr double kInt8KVAttentionNmse = 1e-3;

// Relative tolerance of a float dtype (fp32 for anything wider).
inline double rel_tolerance(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kHalf: return kFp16Rel;
    case torch::kBFloat16: return kBf16Rel;
    default: return kFp32Rel;
  }
}

// ggml's nmse: sum((test - ref)^2) / sum(ref^2), in float64. 0 when both are zero.
inline double nmse(const torch::Tensor& ref, const torch::Tensor& test) {
  auto r = ref.to(torch::kFloat64);
  auto d = test.to(torch::kFloat64) - r;
  const double num = d.pow(2).sum().item<double>();
  const double den = r.pow(2).sum().item<double>();
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

// torchao's SQNR in dB: 20 log10(||ref|| / ||ref - test||) = -10 log10(nmse). +inf when identical.
inline double sqnr_db(const torch::Tensor& ref, const torch::Tensor& test) {
  const double e = nmse(ref, test);
  if (e == 0) return std::numeric_limits<double>::infinity();
  return -10.0 * std::log10(e);
}

// max |test - ref| / (atol + rtol |ref|) <= 1, elementwise: whether test is within a dtype tolerance.
inline bool all_close(const torch::Tensor& ref, const torch::Tensor& test, double rtol, double atol) {
  auto r = ref.to(torch::kFloat64);
  auto t = test.to(torch::kFloat64);
  return (t - r).abs().le(r.abs() * rtol + atol).all().item<bool>();
}

}  // namespace ptq::tol
