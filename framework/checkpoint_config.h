// The "quantization_config" block of a checkpoint's config.json: written from the network's
// quantized layers in compressed-tensors' vocabulary (what vLLM reads), plus a "ptq" block with the
// PTQConfig that lets ptq rebuild the exact structure. docs/FORMAT.md specifies it.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/checkpoint_layout.h"
#include "framework/ptq_config.h"

namespace ptq {

struct QuantizedLayerEntry {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  LinearScheme scheme;
};

// The block: one config group per distinct scheme (targets ["Linear"] when every quantized linear
// shares one scheme, else the exact module names), "ignore" = `float_linears`, "format" = the
// groups' format or "mixed-precision", and "ptq": {"format_version", "config"}.
nlohmann::json quantization_config_json(const std::vector<QuantizedLayerEntry>& quantized,
                                        const std::vector<std::string>& float_linears,
                                        const PTQConfig& config);

// One config group read back (for `ptq inspect`).
struct CheckpointGroup {
  std::string name;                  // "group_0"
  std::vector<std::string> targets;  // module names, or {"Linear"}
  LinearScheme scheme;
  std::string format;  // "pack-quantized" | "int-quantized"
};
// Parses config_groups; `source` names the file in errors (unsupported strategy or type, missing
// key).
std::vector<CheckpointGroup> read_config_groups(const nlohmann::json& quantization_config,
                                                const std::string& source);
// The group whose targets name `layer` exactly, else the one targeting "Linear"; nullptr when none.
const CheckpointGroup* find_group(const std::vector<CheckpointGroup>& groups,
                                  const std::string& layer);

// The PTQConfig of a quantization_config block (mode DEPLOY), after checking that ptq wrote it and
// that its format version is one this build reads. `source` names config.json in errors.
PTQConfig ptq_config_from_block(const nlohmann::json& quantization_config,
                                const std::string& source);

// Throws naming the first key that differs between the configs in a way that changes the quantized
// structure (dtypes, granularity, group size, symmetry, blacklist, layer policies, KV cache). Keys
// that only say how values were computed or where they run (mode, backend, calibration, observers,
// outlier suppression, precision recovery, rounding, algo_args) may differ. `source` starts the
// message.
void check_same_structure(const PTQConfig& checkpoint, const PTQConfig& network,
                          const std::string& source);

// config.json parsed; errors name the file.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace ptq
