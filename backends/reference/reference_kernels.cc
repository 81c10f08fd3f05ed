#include "backends/reference/reference_kernels.h"

#include <torch/torch.h>

#include "framework/activation_quant.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq::reference {
namespace {

void check_input(const torch::Tensor& x, int64_t in_features, const torch::Tensor& weight_data, const char* kernel) {
  PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_features,
            "{}: input has shape {}, expected [..., {}]", kernel, x.defined() ? x.sizes() : c10::IntArrayRef{},
            in_features);
  PTQ_CHECK(torch::isFloatingType(x.scalar_type()), "{}: input has dtype {}, expected a float dtype", kernel,
            x.scalar_type());
  PTQ_CHECK(x.device() == weight_data.device(), "{}: input is on {} but the weight is on {}", kernel,
            x.device().str(), weight_data.device().str());
}

std::vector<int64_t> output_shape(const torch::Tensor& x, int64_t out_features) {
  auto shape = x.sizes().vec();
  shape.back() = out_features;
  return shape;
}

}  // namespace

torch::Tensor exact_int_matmul(const torch::Tensor& a, const torch::Tensor& b) {
  PTQ_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
            "exact_int_matmul: operands have shapes {} and {}, expected [M, K] and [N, K]", a.sizes(), b.sizes());
  auto acc = torch::matmul(a.to(torch::kFloat64), b.to(torch::kFloat64).t());
  if (acc.numel() > 0) {
    const double peak = acc.abs().max().item<double>();
    PTQ_CHECK(peak < 2147483648.0,
              "exact_int_matmul: |accumulator| reaches {} (K = {}), beyond int32: an int32-accumulating kernel "
              "would overflow",
              peak, a.size(1));
  }
  return acc;
}

torch::Tensor weight_only_linear(const torch::Tensor& x, const QuantizedWeight& weight, const torch::Tensor& bias) {
  check_input(x, weight.in_features(), weight.data, "reference weight-only linear");
  auto w = weight.dequantize(x.scalar_type());
  return torch::linear(x, w, bias.defined() ? bias.to(x.scalar_type()) : bias);
}

torch::Tensor int8_linear(const torch::Tensor& x, const QuantizedLinearParams& p) {
  const QuantizedWeight& w = p.weight;
  check_input(x, w.in_features(), w.data, "reference int8 linear");
  PTQ_CHECK(w.bits == 8 && (w.group_size == kPerChannel || w.group_size == kPerTensor),
            "reference int8 linear: weight is {}, expected int8 per-channel or per-tensor", w.describe());
  const int64_t K = w.in_features(), N = w.out_features();
  auto x2 = x.reshape({-1, K});
  QuantizedActivation qa;
  if (p.act == ActQuant::kInt8PerTokenDynamic) {
    qa = quantize_per_token_int8(x2, p.act_symmetric);
  } else {
    PTQ_CHECK(p.act == ActQuant::kInt8PerTensorStatic, "reference int8 linear: activations are not int8-quantized");
    qa = quantize_per_tensor_int8(x2, p.input_scale, p.input_zero_point);
  }
  // Integer operands: activation codes minus their zero point (per row or per tensor), weight codes minus
  // theirs (per output channel).
  auto xi = qa.data.to(torch::kFloat64);
  if (qa.zero_point.defined()) xi = xi - qa.zero_point.to(torch::kFloat64);
  auto wi = w.unpacked_int8().to(torch::kFloat64);
  if (w.zero_point.defined()) wi = wi - w.zero_point.to(torch::kFloat64);  // [N, 1]
  auto acc = exact_int_matmul(xi, wi).to(torch::kFloat32);                   // [M, N]
  auto sx = qa.scale.numel() == 1 ? qa.scale.reshape({1, 1}) : qa.scale.reshape({-1, 1});
  auto y = acc * sx * w.scale.reshape({1, N});
  if (p.bias.defined()) y = y + p.bias.to(torch::kFloat32);
  return y.to(x.scalar_type()).reshape(output_shape(x, N));
}

// ---- kernels --------------------------------------------------------------------------------------------

WeightOnlyLinearKernel::WeightOnlyLinearKernel(QuantizedLinearParams params) : params_(std::move(params)) {
  params_.validate();
  PTQ_CHECK(params_.act == ActQuant::kNone, "reference weight-only kernel: activations must not be quantized ({})",
            params_.scheme().name());
}

torch::Tensor WeightOnlyLinearKernel::forward(const torch::Tensor& x) {
  return weight_only_linear(x, params_.weight, params_.bias);
}

std::string WeightOnlyLinearKernel::name() const { return "reference:" + params_.scheme().name(); }

Int8LinearKernel::Int8LinearKernel(QuantizedLinearParams params) : params_(std::move(params)) {
  params_.validate();
  PTQ_CHECK(params_.act != ActQuant::kNone, "reference int8 kernel: activations must be int8-quantized ({})",
            params_.scheme().name());
  if (params_.input_scale.defined()) {
    params_.input_scale = params_.input_scale.to(params_.weight.data.device());
  }
  if (params_.input_zero_point.defined()) {
    params_.input_zero_point = params_.input_zero_point.to(params_.weight.data.device());
  }
}

torch::Tensor Int8LinearKernel::forward(const torch::Tensor& x) { return int8_linear(x, params_); }

std::string Int8LinearKernel::name() const { return "reference:" + params_.scheme().name(); }

FakeQuantLinearKernel::FakeQuantLinearKernel(const FakeQuantLinearParams& p)
    : bias_(p.bias), input_scale_(p.input_scale), input_zero_point_(p.input_zero_point) {
  PTQ_CHECK(p.weight.defined() && p.weight.dim() == 2, "fake-quant kernel: weight must be 2-d [out, in]");
  weight_ = p.weight_spec.bits == 0 ? p.weight : fake_quantize_weight(p.weight, p.weight_spec);
  scheme_.weight_bits = p.weight_spec.bits;
  scheme_.group_size = p.weight_spec.group_size;
  scheme_.weight_symmetric = p.weight_spec.symmetric;
  scheme_.act = p.act;
  scheme_.act_symmetric = p.act_symmetric;
  if (p.act == ActQuant::kInt8PerTensorStatic) {
    PTQ_CHECK(input_scale_.defined() && input_scale_.numel() == 1,
              "fake-quant kernel: static int8 activations need an input_scale with one value");
    PTQ_CHECK(p.act_symmetric != input_zero_point_.defined(),
              "fake-quant kernel: input_zero_point must be given exactly when activations are asymmetric");
  }
}

torch::Tensor FakeQuantLinearKernel::forward(const torch::Tensor& x) {
  check_input(x, weight_.size(1), weight_, "fake-quant kernel");
  torch::Tensor xq = x;
  if (scheme_.act == ActQuant::kInt8PerTokenDynamic) xq = fake_quantize_per_token_int8(x, scheme_.act_symmetric);
  if (scheme_.act == ActQuant::kInt8PerTensorStatic) {
    xq = fake_quantize_per_tensor_int8(x, input_scale_, input_zero_point_);
  }
  return torch::linear(xq, weight_.to(x.scalar_type()), bias_.defined() ? bias_.to(x.scalar_type()) : bias_);
}

std::string FakeQuantLinearKernel::name() const { return "reference:fake-" + scheme_.name(); }

int64_t FakeQuantLinearKernel::weight_bytes() const { return weight_.numel() * weight_.element_size(); }

}  // namespace ptq::reference
