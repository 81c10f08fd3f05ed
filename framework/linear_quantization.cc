#include "framework/linear_quantization.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "framework/error.h"
#include "framework/log.h"

namespace ptq {
namespace {

LinearScheme linear_scheme(const ResolvedLinearScheme& s) {
  LinearScheme scheme;
  scheme.weight_bits = s.weight.bits;
  scheme.group_size = s.weight.group_size;
  scheme.weight_symmetric = s.weight.symmetric;
  scheme.act = s.act;
  scheme.act_symmetric = s.act_symmetric;
  return scheme;
}

int64_t float_weight_bytes(const LinearImpl& linear, torch::ScalarType dtype) {
  return linear.in_features() * linear.out_features() * static_cast<int64_t>(c10::elementSize(dtype));
}

// The calibration-time kernel for a quantized form: the dequantized weight (already the layer's weight)
// and activation fake-quant. Static activations get it only once their scale is known (a later stage
// calibrates them); until then the layer is weight-only fake-quantized.
void install_fake_quant_kernel(LinearImpl& linear) {
  const QuantizedLinearParams& p = *linear.quantized;
  auto reference = find_backend(kReferenceBackendName);
  PTQ_CHECK(reference, "the reference backend is not registered: call ptq::register_builtin_backends() first");
  FakeQuantLinearParams fake;
  fake.weight = linear.weight;
  fake.bias = linear.bias;
  fake.weight_spec.bits = 0;
  const bool static_pending = p.act == ActQuant::kInt8PerTensorStatic && !p.input_scale.defined();
  fake.act = static_pending ? ActQuant::kNone : p.act;
  fake.act_symmetric = p.act_symmetric;
  fake.input_scale = p.input_scale;
  fake.input_zero_point = p.input_zero_point;
  linear.set_kernel(reference->make_fake_quant_kernel(fake));
}

}  // namespace

std::string ResolvedLinearScheme::describe() const {
  if (skip) return "float";
  return linear_scheme(*this).name();
}

ResolvedLinearScheme resolve_linear_scheme(const PTQConfig& config, const LinearImpl& linear) {
  ResolvedLinearScheme r;
  r.layer = config.scheme_for(linear.path());
  if (r.layer.skip) {
    r.skip = true;
    r.reason = r.layer.skip_reason;
    return r;
  }
  if (!r.layer.quantized()) {
    r.skip = true;
    r.reason = r.layer.policy_index >= 0
                   ? fmt::format("layer_policies[{}] (pattern \"{}\") quantizes neither weights nor activations",
                                 r.layer.policy_index, r.layer.policy_pattern)
                   : "the config quantizes neither weights nor activations";
    return r;
  }
  r.weight.bits = bits(r.layer.weight_quant_dtype);
  r.weight.symmetric = r.layer.weight_symmetric;
  r.weight.group_size = kPerChannel;
  if (r.layer.weight_quant_granularity == QuantGranularity::kPerGroup) {
    if (r.layer.group_size_fits(linear.in_features())) {
      r.weight.group_size = r.layer.group_size;
    } else {
      r.reason = fmt::format("group size {} does not divide in_features {}: quantized per channel",
                             r.layer.group_size, linear.in_features());
    }
  }
  if (r.layer.act_quant_dtype == QuantDtype::kInt8) {
    r.act = r.layer.act_quant_granularity == QuantGranularity::kPerToken ? ActQuant::kInt8PerTokenDynamic
                                                                         : ActQuant::kInt8PerTensorStatic;
    r.act_symmetric = r.layer.act_symmetric;
  }
  PTQ_CHECK(r.weight.bits > 0, "layer \"{}\": activation-only quantization is not supported (weight_quant_dtype "
                               "\"none\" with act_quant_dtype \"int8\")",
            linear.path());
  return r;
}

void install_quantized_weight(LinearImpl& linear, QuantizedWeight weight, const ResolvedLinearScheme& scheme,
                              const std::string& algorithm, QuantizationReport& report) {
  torch::NoGradGuard no_grad;
  PTQ_CHECK(!scheme.skip, "layer \"{}\" is not to be quantized ({})", linear.path(), scheme.reason);
  PTQ_CHECK(weight.shape == std::vector<int64_t>({linear.out_features(), linear.in_features()}),
            "layer \"{}\": quantized weight has shape [{}], expected [{}, {}]", linear.path(),
            fmt::join(weight.shape, ", "), linear.out_features(), linear.in_features());
  const torch::Tensor original = linear.weight;
  torch::Tensor dequantized = weight.dequantize(original.scalar_type());
  // NaN/Inf guard: an algorithm's scales (AWQ clipping, GPTQ's error feedback on an ill-conditioned
  // Hessian, a plugin) or their dequantized values in a 16-bit dtype can be non-finite. The layer
  // then gets plain round-to-nearest of the same weight with the same scheme (the checkpoint layout
  // does not change), and the report says so; when even that is not finite, the error names it.
  std::string numeric_fallback;
  std::string rounded_by = algorithm;
  if (!torch::isfinite(weight.scale).all().item<bool>() ||
      !torch::isfinite(dequantized).all().item<bool>()) {
    PTQ_CHECK(
        torch::isfinite(original).all().item<bool>(),
        "layer \"{}\": its float weight holds non-finite values (NaN or Inf); the model cannot be "
        "quantized (or used) until they are fixed",
        linear.path());
    WeightQuantSpec plain = scheme.weight;
    plain.clip_ratio = 1.0;
    plain.clip_ratio_per_group = torch::Tensor();
    plain.scale = torch::Tensor();
    plain.zero_point = torch::Tensor();
    weight = quantize_weight(original.to(torch::kFloat32), plain);
    dequantized = weight.dequantize(original.scalar_type());
    PTQ_CHECK(
        torch::isfinite(weight.scale).all().item<bool>() &&
            torch::isfinite(dequantized).all().item<bool>(),
        "layer \"{}\": round-to-nearest {} of its weight is not finite either (weights near the "
        "largest {} value?); keep the layer in float with opname_blacklist",
        linear.path(), plain.to_string(), c10::toString(original.scalar_type()));
    numeric_fallback =
        fmt::format("{} gave non-finite scales or weights: rounded to nearest instead", algorithm);
    rounded_by = "rtn";
    log_warning("{}: {}", linear.path(), numeric_fallback);
  }
  const double norm = original.to(torch::kFloat32).norm().item<double>();
  const double error = (original.to(torch::kFloat32) - dequantized.to(torch::kFloat32)).norm().item<double>();

  auto params = std::make_shared<QuantizedLinearParams>();
  params->weight = std::move(weight);
  params->bias = linear.bias;
  params->act = scheme.act;
  params->act_symmetric = scheme.act_symmetric;
  linear.quantized = params;
  linear.backend_name.clear();
  linear.backend_fallback_reason.clear();
  linear.replace_weight(dequantized);
  install_fake_quant_kernel(linear);

  LayerRecord r;
  r.name = linear.path();
  r.scheme = scheme.describe();
  r.algorithm = rounded_by;
  r.in_features = linear.in_features();
  r.out_features = linear.out_features();
  r.float_bytes = float_weight_bytes(linear, original.scalar_type());
  r.quantized_bytes = params->weight.weight_bytes();
  r.relative_error = norm > 0 ? error / norm : error;
  r.fallback = scheme.reason.empty() || numeric_fallback.empty()
                   ? scheme.reason + numeric_fallback
                   : scheme.reason + "; " + numeric_fallback;
  report.record(std::move(r));
}

void refresh_fake_quant_kernel(LinearImpl& linear) {
  PTQ_CHECK(linear.quantized, "layer \"{}\" is not quantized", linear.path());
  install_fake_quant_kernel(linear);
}

void record_float_layer(const LinearImpl& linear, const std::string& reason, QuantizationReport& report) {
  LayerRecord r;
  r.name = linear.path();
  r.scheme = "float";
  r.in_features = linear.in_features();
  r.out_features = linear.out_features();
  r.float_bytes = float_weight_bytes(linear, linear.weight.scalar_type());
  r.quantized_bytes = r.float_bytes;
  r.fallback = reason;
  report.record(std::move(r));
}

std::vector<RoundingTarget> rounding_targets(const std::vector<std::shared_ptr<LinearImpl>>& linears,
                                             const PTQConfig& config, QuantizationReport& report) {
  std::vector<RoundingTarget> targets;
  for (const auto& linear : linears) {
    if (linear->quantized) continue;
    ResolvedLinearScheme scheme = resolve_linear_scheme(config, *linear);
    if (scheme.skip || scheme.weight.bits == 0) {
      record_float_layer(*linear, scheme.skip ? scheme.reason : "weights not quantized by the config", report);
      continue;
    }
    targets.push_back({linear, std::move(scheme)});
  }
  return targets;
}

QuantizedWeight empty_quantized_weight(int64_t out_features, int64_t in_features, const WeightQuantSpec& spec,
                                       const torch::Device& device) {
  // Quantizing zeros gives exactly quantize_weight's layout (packing, scale and zero-point shapes and
  // dtypes) without a second description of it to keep in sync. Every row of zeros quantizes alike, so
  // one row is quantized and repeated: quantizing the whole zero matrix took ~40 s and 4 GB of
  // temporaries for a 1.1B model, most of the time it took to load a checkpoint.
  WeightQuantSpec plain = spec;
  plain.clip_ratio = 1.0;
  plain.clip_ratio_per_group = torch::Tensor();
  plain.scale = torch::Tensor();
  plain.zero_point = torch::Tensor();
  QuantizedWeight w = quantize_weight(torch::zeros({1, in_features}, torch::TensorOptions().device(device)), plain);
  // data, scale and zero point all hold one row per output feature (QuantizedWeight::validate).
  auto repeat_rows = [out_features](const torch::Tensor& t) {
    return t.defined() ? t.expand({out_features, t.size(1)}).contiguous() : t;
  };
  w.data = repeat_rows(w.data);
  w.scale = repeat_rows(w.scale);
  w.zero_point = repeat_rows(w.zero_point);
  w.shape = {out_features, in_features};
  w.validate();
  return w;
}

void install_deploy_structure(LinearImpl& linear, const ResolvedLinearScheme& scheme, QuantizationReport& report) {
  torch::NoGradGuard no_grad;
  PTQ_CHECK(!scheme.skip, "layer \"{}\" is not to be quantized ({})", linear.path(), scheme.reason);
  const torch::ScalarType float_dtype = linear.weight.scalar_type();
  auto params = std::make_shared<QuantizedLinearParams>();
  params->weight = empty_quantized_weight(linear.out_features(), linear.in_features(), scheme.weight,
                                          linear.weight.device());
  params->bias = linear.bias;
  params->act = scheme.act;
  params->act_symmetric = scheme.act_symmetric;
  if (scheme.act == ActQuant::kInt8PerTensorStatic) {
    params->input_scale = torch::ones({1}, torch::TensorOptions().device(linear.weight.device()));
    if (!scheme.act_symmetric)
      params->input_zero_point =
          torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt8).device(linear.weight.device()));
  }
  linear.quantized = params;
  linear.set_kernel(nullptr);
  linear.replace_weight(torch::empty({0}, linear.weight.options()));

  LayerRecord r;
  r.name = linear.path();
  r.scheme = scheme.describe();
  r.algorithm = "deploy";
  r.in_features = linear.in_features();
  r.out_features = linear.out_features();
  r.float_bytes = float_weight_bytes(linear, float_dtype);
  r.quantized_bytes = params->weight.weight_bytes();
  r.fallback = scheme.reason;
  report.record(std::move(r));
}

void convert_linear(LinearImpl& linear, const std::string& requested_backend, torch::ScalarType compute_dtype) {
  PTQ_CHECK(linear.quantized, "layer \"{}\" has no quantized form to convert", linear.path());
  const QuantizedLinearParams& params = *linear.quantized;
  try {
    params.validate();
  } catch (const Error& e) {
    fail("layer \"{}\": {}", linear.path(), e.what());
  }
  BackendChoice choice = select_backend(requested_backend, params.scheme(), params.weight.data.device());
  linear.set_kernel(choice.backend->make_linear_kernel(params, compute_dtype));
  linear.backend_name = choice.backend->name();
  linear.backend_fallback_reason = choice.fallback_reason;
  if (linear.weight.numel() > 0) linear.replace_weight(torch::empty({0}, linear.weight.options()));
}

}  // namespace ptq
