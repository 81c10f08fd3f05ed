// Quantized checkpoints: a folder like a Hugging Face model folder, readable by vLLM
// (compressed-tensors conventions) and by ptq. docs/FORMAT.md is the specification.
//
//   config.json        the network's config plus a "quantization_config" block: compressed-tensors'
//                      quant_method / format / config_groups / ignore, and a "ptq" block (format
//                      version and the PTQConfig, so ptq can rebuild the exact structure)
//   model.safetensors  (model-0000i-of-0000N.safetensors + index above 5 GB) float tensors in their
//                      own dtype; each quantized linear <name> as
//                        weight-only, "pack-quantized":
//                          <name>.weight_packed  int32 [out, ceil(in / (32 / bits))]
//                          <name>.weight_shape   int64 [2]
//                          <name>.weight_scale   float32
//                        int8 activations, "int-quantized":
//                          <name>.weight         int8 [out, in]
//                          <name>.weight_scale   float32
//                        plus <name>.weight_zero_point (asymmetric weights) and <name>.input_scale
//                        (+ <name>.input_zero_point) for static activations
//   tokenizer files    copied from the source folder
//
// The folder is written under a temporary name and renamed into place at the end, so a failure
// leaves either the old folder or nothing -- never a half-written one.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "framework/causal_lm.h"
#include "framework/ptq_config.h"
#include "framework/safetensors.h"

namespace ptq {

// Bump when the stored layout changes meaning; an older ptq then refuses the folder with a sentence
// saying to upgrade, instead of misreading it. 2: every safetensors file records the CRC-32 of each
// of its tensors (framework/tensor_checksum.h), and loading verifies them; version 1 folders still
// load, unverified, with a warning.
inline constexpr int kCheckpointFormatVersion = 2;
// The first version whose files all carry checksums.
inline constexpr int kCheckpointChecksumVersion = 2;

struct SaveCheckpointOptions {
  // Tensor bytes per safetensors shard (transformers' 5 GB by default); one shard is
  // model.safetensors.
  uint64_t max_shard_bytes = SafetensorsShardWriter::kDefaultMaxShardBytes;
};

// Writes `net` (float, or quantized by apply [+ convert]) to `dir`; an existing `dir` is replaced.
// Quantized linears are stored from LinearImpl::quantized (their float weight is not written);
// every other parameter and every registered buffer is written in its own dtype, except a parameter
// sharing storage with one already written (tied lm_head: config.json keeps tie_word_embeddings
// true only then). A float network (no net.quantization) gives a plain Hugging Face folder without
// quantization_config.
void save_checkpoint(const CausalLM& net, const std::filesystem::path& dir,
                     const SaveCheckpointOptions& options);
inline void save_checkpoint(const CausalLM& net, const std::filesystem::path& dir) {
  save_checkpoint(net, dir, SaveCheckpointOptions{});
}

// Fills a network whose quantized structure was built by a DEPLOY apply (+ convert) from the
// folder. Every tensor is checked against the structure: a missing, extra-for-a-quantized-layer,
// misshapen or mistyped tensor, or a checkpoint whose quantization config differs from the
// network's, throws naming the file, the tensor and what was expected. A converted layer
// (backend_name set) gets its kernel rebuilt from the loaded values; a layer not yet converted is
// left without a kernel: call convert() after load_checkpoint (apply -> load -> convert works as
// well as apply -> convert -> load). A float checkpoint loads into a float network the same way
// (every parameter checked).
void load_checkpoint(const std::filesystem::path& dir, CausalLM& net);

// The PTQConfig recorded in dir/config.json (mode set to DEPLOY), or nullopt for a float folder.
// Throws when the folder is quantized by another tool or with a newer checkpoint format version.
std::optional<PTQConfig> read_checkpoint_config(const std::filesystem::path& dir);

namespace detail {
// Tests only: called at stages of save_checkpoint ("tensors written", "complete"), inside the
// atomic write; throwing from it simulates a failure there. An empty function removes the hook.
void set_save_checkpoint_hook(std::function<void(const std::string& stage)> hook);
}  // namespace detail

}  // namespace ptq
