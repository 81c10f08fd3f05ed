// Loading a model folder whatever it holds: a float Hugging Face folder, or a quantized checkpoint
// that ptq wrote (framework/checkpoint.h), rebuilt from the folder alone.
#pragma once

#include <filesystem>
#include <memory>

#include "network_helpers/llama/llama_loader.h"

namespace ptq {

// config.json -> LlamaForCausalLM (in options' dtype and device) -> the checkpoint's PTQConfig
// (DEPLOY) -> create_algorithm("ptq") apply + convert -> load_checkpoint. Kernels come from the
// backend the checkpoint was quantized for ("auto" picks the best for the device), with the usual
// fallback to the reference backend. Throws for a float folder (use load_llama or load_any_model).
std::shared_ptr<LlamaForCausalLM> load_quantized(const std::filesystem::path& dir,
                                                 const LoadOptions& options = {});

// Whether dir/config.json has a quantization_config block (quantized by ptq or another tool).
bool is_quantized_folder(const std::filesystem::path& dir);

// load_quantized for a quantized folder, load_llama for a float one.
std::shared_ptr<LlamaForCausalLM> load_any_model(const std::filesystem::path& dir,
                                                 const LoadOptions& options = {});

}  // namespace ptq
