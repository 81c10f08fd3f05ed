// The pieces of save_checkpoint that the layer-streamed writer (framework/stream_quantize.cc) shares,
// so that both write the same bytes. Not a public interface.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/checkpoint_config.h"

namespace ptq::detail {

// What a tokenizer loader (ours or transformers') may read next to the weights.
const std::vector<std::string>& checkpoint_tokenizer_files();
std::string checkpoint_dtype_name(torch::ScalarType dtype);  // "bfloat16" | "float16" | "float32"
// The 16-bit dtype config.json declares for the float weights (the source checkpoint's), if any.
std::optional<torch::ScalarType> declared_16bit_dtype(const nlohmann::json& config);
// A float tensor as the checkpoint stores it: narrowed to `narrow` when that is lossless, else as is
// (and kept_wide is set).
torch::Tensor checkpoint_storage_form(const torch::Tensor& t, std::optional<torch::ScalarType> narrow,
                                      bool& kept_wide);
// config.json of the checkpoint: the network's config with the quantization_config block.
nlohmann::json checkpoint_config_json(const CausalLM& net, const std::vector<QuantizedLayerEntry>& quantized,
                                      const std::vector<std::string>& float_linears, bool skipped_tied,
                                      bool kept_wide);
void write_checkpoint_text(const std::filesystem::path& path, const std::string& text);
// Copies the tokenizer files of net.source_dir into `staging` (warns when there are none).
void copy_checkpoint_tokenizer_files(const CausalLM& net, const std::filesystem::path& target,
                                     const std::filesystem::path& staging);

}  // namespace ptq::detail
