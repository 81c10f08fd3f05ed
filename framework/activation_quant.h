// Int8 quantization of activations (the A8 of W8A8): per-token dynamic (scales computed from each row at
// run time) and per-tensor static (a calibrated scale, optionally with a zero point), plus fake-quant
// versions for calibration. All arithmetic is float32 whatever x's dtype; round() is torch::round
// (half to even, as vLLM's int8 quant kernels' nearbyint), codes are clamped to [-128, 127].
//
//   per-token, symmetric:   s = max|row| / 127,  q = clamp(round(x / s), -128, 127)   (|q| <= 127)
//                           This is vLLM's dynamic_scaled_int8_quant / SmoothQuant's convention (127, not
//                           the 127.5 compressed-tensors uses for weights), so the CUDA kernels can match.
//                           An all-zero row gets s = 1 (its codes are 0, any scale dequantizes to 0).
//   per-token, asymmetric:  lo = min(min(row), 0), hi = max(max(row), 0), s = (hi - lo) / 255,
//                           z = round(clamp(-128 - lo / s, -128, 127)), q = clamp(round(x / s + z), -128, 127)
//   per-tensor, static:     q = clamp(round(x / s + z), -128, 127) with the given s (and z, default 0)
//   dequantize:             x' = (q - z) * s
#pragma once

#include <torch/types.h>

namespace ptq {

// x: [..., K] quantized along its last dimension.
struct QuantizedActivation {
  torch::Tensor data;        // int8, x's shape
  torch::Tensor scale;       // float32: [..., 1] per token, or [] per tensor
  torch::Tensor zero_point;  // int32 of scale's shape, or undefined (symmetric)

  // (q - z) * s in float32, then cast to dtype; x's shape.
  torch::Tensor dequantize(torch::ScalarType dtype = torch::kFloat32) const;
};

QuantizedActivation quantize_per_token_int8(const torch::Tensor& x, bool symmetric = true);

// scale: one positive float (a 0-d or 1-element tensor); zero_point: undefined (symmetric) or one
// integer in [-128, 127] (any integer or float dtype).
QuantizedActivation quantize_per_tensor_int8(const torch::Tensor& x, const torch::Tensor& scale,
                                             const torch::Tensor& zero_point = {});

// Quantize then dequantize, returned in x's dtype (calibration, fake-quant kernels).
torch::Tensor fake_quantize_per_token_int8(const torch::Tensor& x, bool symmetric = true);
torch::Tensor fake_quantize_per_tensor_int8(const torch::Tensor& x, const torch::Tensor& scale,
                                            const torch::Tensor& zero_point = {});

// Static parameters from a calibrated range (what an observer turns min/max into). Symmetric:
// s = max(|lo|, |hi|) / 127, no zero point; asymmetric: the per-token asymmetric formula above.
// A zero range gives s = 1.
struct ActivationQParams {
  torch::Tensor scale;       // float32 []
  torch::Tensor zero_point;  // int32 [] or undefined (symmetric)
};
ActivationQParams static_activation_qparams(double lo, double hi, bool symmetric);

}  // namespace ptq
