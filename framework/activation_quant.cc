#include "framework/activation_quant.h"

#include <torch/torch.h>

#include <cmath>

#include "framework/error.h"
#include "framework/int8_codes.h"
#include "framework/quantized_weight.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

void check_activation(const torch::Tensor& x, const char* what) {
  PTQ_CHECK(x.defined(), "{}: activation tensor is undefined", what);
  PTQ_CHECK(x.dim() >= 1 && x.size(-1) > 0, "{}: activation has shape {}, expected [..., K] with K > 0", what,
            x.sizes());
  PTQ_CHECK(torch::isFloatingType(x.scalar_type()), "{}: activation has dtype {}, expected a float dtype", what,
            x.scalar_type());
}

torch::Tensor codes(const torch::Tensor& xf, const torch::Tensor& s, const torch::Tensor& z) {
  auto t = xf / s;
  if (z.defined()) t = t + z.to(torch::kFloat32);
  return t.round().clamp(kInt8CodeMin, kInt8CodeMax).to(torch::kInt8);
}

// Asymmetric parameters of ranges lo <= 0 <= hi (float32 tensors of one shape).
void asymmetric_params(torch::Tensor lo, torch::Tensor hi, torch::Tensor* s, torch::Tensor* z) {
  lo = lo.clamp_max(0);
  hi = hi.clamp_min(0);
  *s = nonzero_scale(div_exact(hi - lo, kInt8CodeMax - kInt8CodeMin));
  *z = (kInt8CodeMin - lo / *s).clamp(kInt8CodeMin, kInt8CodeMax).round().to(torch::kInt32);
}

}  // namespace

torch::Tensor QuantizedActivation::dequantize(torch::ScalarType dtype) const {
  PTQ_CHECK(data.defined() && scale.defined(), "QuantizedActivation: data or scale is undefined");
  auto v = data.to(torch::kFloat32);
  if (zero_point.defined()) v = v - zero_point.to(torch::kFloat32);
  return (v * scale).to(dtype);
}

QuantizedActivation quantize_per_token_int8(const torch::Tensor& x, bool symmetric) {
  check_activation(x, "quantize_per_token_int8");
  auto xf = x.to(torch::kFloat32);
  QuantizedActivation out;
  if (symmetric) {
    out.scale = nonzero_scale(div_exact(xf.abs().amax(-1, /*keepdim=*/true), kInt8CodeMax));
  } else {
    asymmetric_params(xf.amin(-1, true), xf.amax(-1, true), &out.scale, &out.zero_point);
  }
  out.data = codes(xf, out.scale, out.zero_point);
  return out;
}

QuantizedActivation quantize_per_tensor_int8(const torch::Tensor& x, const torch::Tensor& scale,
                                             const torch::Tensor& zero_point) {
  check_activation(x, "quantize_per_tensor_int8");
  PTQ_CHECK(scale.defined() && scale.numel() == 1,
            "quantize_per_tensor_int8: input scale must hold one value, got shape {}",
            scale.defined() ? scale.sizes() : c10::IntArrayRef{});
  QuantizedActivation out;
  out.scale = scale.to(x.device(), torch::kFloat32).reshape({});
  PTQ_CHECK(out.scale.item<float>() > 0 && std::isfinite(out.scale.item<float>()),
            "quantize_per_tensor_int8: input scale {} must be positive and finite", out.scale.item<float>());
  if (zero_point.defined()) {
    PTQ_CHECK(zero_point.numel() == 1, "quantize_per_tensor_int8: input zero point must hold one value, got shape {}",
              zero_point.sizes());
    const double z = zero_point.to(torch::kFloat64).item<double>();
    PTQ_CHECK(z == std::round(z) && z >= kInt8CodeMin && z <= kInt8CodeMax,
              "quantize_per_tensor_int8: input zero point {} must be an integer in [-128, 127]", z);
    out.zero_point = zero_point.to(x.device(), torch::kInt32).reshape({});
  }
  out.data = codes(x.to(torch::kFloat32), out.scale, out.zero_point);
  return out;
}

torch::Tensor fake_quantize_per_token_int8(const torch::Tensor& x, bool symmetric) {
  return quantize_per_token_int8(x, symmetric).dequantize(x.scalar_type());
}

torch::Tensor fake_quantize_per_tensor_int8(const torch::Tensor& x, const torch::Tensor& scale,
                                            const torch::Tensor& zero_point) {
  return quantize_per_tensor_int8(x, scale, zero_point).dequantize(x.scalar_type());
}

ActivationQParams static_activation_qparams(double lo, double hi, bool symmetric) {
  PTQ_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
            "static_activation_qparams: range [{}, {}] must be finite and ordered", lo, hi);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto lo_t = torch::scalar_tensor(lo, f32), hi_t = torch::scalar_tensor(hi, f32);
  ActivationQParams p;
  if (symmetric) {
    p.scale = nonzero_scale(div_exact(torch::max(lo_t.abs(), hi_t.abs()), kInt8CodeMax));
  } else {
    asymmetric_params(lo_t, hi_t, &p.scale, &p.zero_point);
  }
  return p;
}

}  // namespace ptq
