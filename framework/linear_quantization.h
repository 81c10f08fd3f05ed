// The steps every weight-rounding algorithm shares: resolve what the config asks for one linear (with
// fallbacks), install a quantized form into the Linear slot (fake-quant kernel for calibration), build
// the empty DEPLOY structure, and convert to a backend's real kernel.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/linear.h"
#include "framework/ptq_config.h"
#include "framework/quantization_report.h"

namespace ptq {

// The scheme one linear gets, resolved against its shape.
struct ResolvedLinearScheme {
  bool skip = false;
  std::string reason;       // skip: why; quantized: a fallback note ("g128 does not divide 11008: per-channel")
  LayerScheme layer;        // what the config resolves to for this name
  WeightQuantSpec weight;   // bits 0 = weights stay float (activation-only schemes are rejected by the config)
  ActQuant act = ActQuant::kNone;
  bool act_symmetric = true;

  std::string describe() const;  // "W4A16 g128 asym"
};

// config.scheme_for(linear.path()), plus the shape check: a per-group size that does not divide
// in_features falls back to per-channel (noted in `reason`).
ResolvedLinearScheme resolve_linear_scheme(const PTQConfig& config, const LinearImpl& linear);

// Makes `weight` (already quantized by the algorithm) the linear's quantized form: sets
// linear.quantized (bias copied; act settings from `scheme`), replaces the float weight by its
// dequantized values and installs the reference fake-quant kernel (dequantized weight, activation
// fake-quant as the scheme says). Records the layer in `report` (relative error against the float
// weight it replaces). `algorithm` names the rounding ("rtn").
void install_quantized_weight(LinearImpl& linear, QuantizedWeight weight, const ResolvedLinearScheme& scheme,
                              const std::string& algorithm, QuantizationReport& report);

// Re-makes the fake-quant kernel from linear.quantized (after a stage set the static input scale).
void refresh_fake_quant_kernel(LinearImpl& linear);

// Records a layer left in float (blacklisted, policy skip) in the report.
void record_float_layer(const LinearImpl& linear, const std::string& reason, QuantizationReport& report);

// What a weight-rounding stage (RTN, GPTQ, a plugin's) rounds in a layer: each linear of `linears` not yet
// quantized (an earlier stage or a shared weight already rounded it) and not left in float by the config,
// with its scheme, in order. Those the config leaves in float are recorded in `report` on the way.
struct RoundingTarget {
  std::shared_ptr<LinearImpl> linear;
  ResolvedLinearScheme scheme;
};
std::vector<RoundingTarget> rounding_targets(const std::vector<std::shared_ptr<LinearImpl>>& linears,
                                             const PTQConfig& config, QuantizationReport& report);

// An all-zero QuantizedWeight of the layout quantize_weight would produce for an [out, in] weight
// (DEPLOY: the structure load_checkpoint fills).
QuantizedWeight empty_quantized_weight(int64_t out_features, int64_t in_features, const WeightQuantSpec& spec,
                                       const torch::Device& device);

// DEPLOY: gives the linear an empty quantized form per `scheme` (static activations get a placeholder
// input scale of 1) and releases its float weight.
void install_deploy_structure(LinearImpl& linear, const ResolvedLinearScheme& scheme, QuantizationReport& report);

// Builds the backend kernel for the linear's quantized form (backend chosen by select_backend from
// `requested`), installs it, records the choice on the linear, and releases the float weight.
// Throws naming the layer when the quantized form is incomplete (e.g. a static input scale missing).
void convert_linear(LinearImpl& linear, const std::string& requested_backend, torch::ScalarType compute_dtype);

}  // namespace ptq
