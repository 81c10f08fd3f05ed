// The reference Linear kernels: plain LibTorch ops on any device, written for obviousness, not speed.
// They define what every optimized kernel (backends/cpu, backends/cuda) must compute:
//
//   weight-only (W8A16, W4A16, W3A16; any group size, sym/asym):
//       y = linear(x, dequantize(W) in x's dtype, bias)
//       (dequantization in float32, then one cast to x's dtype; the matmul runs in x's dtype)
//   W8A8 (int8 per-channel or per-tensor weights; int8 activations per-token dynamic or per-tensor static):
//       acc[m, n] = sum_k (qx[m, k] - zx[m]) * (qw[n, k] - zw[n])     exact integer, int32 semantics
//       y[m, n]   = float32(acc) * sx[m] * sw[n] + bias[n]              in float32, in this order,
//       then cast to x's dtype. float32(acc) is the round-to-nearest conversion an int32 -> fp32 epilogue
//       does (exact while |acc| < 2^24).
//   fake quant: x' = fake_quant(x) (if activations are quantized), w' = fake_quant(w), y = linear(x', w', b)
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "framework/backend.h"

namespace ptq::reference {

// Exact integer matrix product of integer-valued tensors a [M, K] and b [N, K] (any dtype): a b^T as
// float64 [M, N]. Every product and partial sum is an integer below 2^53, so float64 holds it exactly
// (K up to 2^37 for int8 operands); throws when a result leaves the int32 range, as an int32
// accumulator would overflow there (|acc| < 2^31: K < 131072 for symmetric int8, K < 33025 when both
// operands carry zero points).
torch::Tensor exact_int_matmul(const torch::Tensor& a, const torch::Tensor& b);

// The weight-only and W8A8 formulas above as functions (the kernels call them; tests compare to them).
torch::Tensor weight_only_linear(const torch::Tensor& x, const QuantizedWeight& weight, const torch::Tensor& bias);
torch::Tensor int8_linear(const torch::Tensor& x, const QuantizedLinearParams& params);

// W3/W4/W8 weights, A16.
class WeightOnlyLinearKernel : public LinearKernel {
 public:
  explicit WeightOnlyLinearKernel(QuantizedLinearParams params);
  torch::Tensor forward(const torch::Tensor& x) override;
  std::string name() const override;
  int64_t weight_bytes() const override { return params_.weight.weight_bytes(); }
  const QuantizedLinearParams& params() const { return params_; }

 private:
  QuantizedLinearParams params_;
};

// W8A8, static per-tensor or dynamic per-token activations.
class Int8LinearKernel : public LinearKernel {
 public:
  explicit Int8LinearKernel(QuantizedLinearParams params);
  torch::Tensor forward(const torch::Tensor& x) override;
  std::string name() const override;
  int64_t weight_bytes() const override { return params_.weight.weight_bytes(); }
  const QuantizedLinearParams& params() const { return params_; }

 private:
  QuantizedLinearParams params_;
};

// Calibration-time simulation: fake-quantized weight (computed once) and activations, float matmul.
class FakeQuantLinearKernel : public LinearKernel {
 public:
  explicit FakeQuantLinearKernel(const FakeQuantLinearParams& params);
  torch::Tensor forward(const torch::Tensor& x) override;
  std::string name() const override;
  int64_t weight_bytes() const override;  // the float weight it holds
  const torch::Tensor& fake_quantized_weight() const { return weight_; }

 private:
  torch::Tensor weight_;  // fake-quantized, in the original weight's dtype
  torch::Tensor bias_;
  LinearScheme scheme_;
  torch::Tensor input_scale_, input_zero_point_;
};

}  // namespace ptq::reference
