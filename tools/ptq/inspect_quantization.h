// The quantization part of `ptq inspect`: what a quantized checkpoint holds, per layer, read from
// config.json and the safetensors headers only (no weights are loaded).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "framework/safetensors.h"
#include "framework/table.h"

namespace ptq::cli {

struct QuantizationInspection {
  nlohmann::json json;  // format, config, groups, ignore, layers
  std::vector<std::pair<std::string, std::string>> properties;  // rows for the summary table
  Table layers{{"layer", "scheme", "format", "stored", "backend (cpu)", "note"}};
};

// Every quantized layer (a "<layer>.weight_scale" tensor) with the scheme of its config group, its
// stored format and bytes, and the backend convert() would pick for it on the CPU (with the reason
// when the requested backend declines). Throws when quantization_config cannot be read.
QuantizationInspection inspect_quantization(const std::filesystem::path& dir,
                                            const nlohmann::json& quantization_config,
                                            const TensorStore& store);

}  // namespace ptq::cli
