// Helpers shared by the backend-against-reference kernel tests (core/test_cpu_kernels.cc,
// cuda/test_cuda_kernels.cc): the row counts, the weight spec (also used by core/test_gptq.cc and
// core/test_quantization.cc), the linear scheme a backend is asked about, and the two ways a kernel's
// output is compared with the reference's. Header-only: test_util.cc is also linked into the tokenizer
// tests, which are built without LibTorch.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "framework/backend.h"
#include "framework/quantized_weight.h"
#include "framework/tolerances.h"

namespace ptq::testing {

// Rows M of the kernel inputs: 1 and 2 (decode), 5 and 33 (vector tails), 16 (the small-M / decode
// limit of the kernels), 128 (prefill tiles).
inline const std::vector<int64_t> kRows = {1, 2, 5, 16, 33, 128};

inline WeightQuantSpec spec(int bits, int64_t group_size, bool symmetric) {
  WeightQuantSpec s;
  s.bits = bits;
  s.group_size = group_size;
  s.symmetric = symmetric;
  return s;
}

// The scheme a backend's supports() is asked about, in one expression.
inline LinearScheme linear_scheme(int weight_bits, int64_t group_size = kPerChannel, ActQuant act = ActQuant::kNone,
                                  bool weight_symmetric = true) {
  LinearScheme s;
  s.weight_bits = weight_bits;
  s.group_size = group_size;
  s.act = act;
  s.weight_symmetric = weight_symmetric;
  return s;
}

// Weight-only kernels dequantize bit for bit but sum in another order: per element within the
// relative tolerance of the compute dtype, with an absolute floor of that tolerance times the largest
// output (results near zero have no meaningful relative error), and the normalized MSE of a kernel
// that reorders float sums (tol::kKernelNmse).
inline void expect_weight_only_close(const torch::Tensor& ref, const torch::Tensor& out) {
  ASSERT_EQ(ref.sizes(), out.sizes());
  ASSERT_EQ(ref.scalar_type(), out.scalar_type());
  const double rtol = tol::rel_tolerance(out.scalar_type());
  const double atol = rtol * ref.abs().max().item<double>();
  EXPECT_TRUE(tol::all_close(ref, out, rtol, atol))
      << "max |diff| "
      << (out.to(torch::kFloat64) - ref.to(torch::kFloat64)).abs().max().item<double>()
      << ", max |ref| " << ref.abs().max().item<double>();
  EXPECT_LE(tol::nmse(ref, out), tol::kKernelNmse);
}

// W8A8 kernels are exact: the same activation codes, exact int32 accumulation and the reference's
// float32 epilogue in the same order give the same bits (tol::kIntegerExact).
inline void expect_bit_exact(const torch::Tensor& expected, const torch::Tensor& got) {
  ASSERT_EQ(expected.sizes(), got.sizes());
  EXPECT_TRUE(torch::equal(expected, got))
      << "max |diff| " << (expected - got).abs().max().item<double>() << " (tolerance "
      << tol::kIntegerExact << ")";
}

}  // namespace ptq::testing
