// Builds a Llama-family network from a Hugging Face folder (config.json + *.safetensors).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <memory>

#include "network_helpers/llama/llama_model.h"

namespace ptq {

struct LoadOptions {
  torch::ScalarType compute_dtype = torch::kFloat32;  // bf16/fp16 weights are converted at load
  torch::Device device = torch::kCPU;
  // Build the network with placeholder weights (framework/deferred_weights.h) and load nothing: the
  // checkpoint is only checked to hold every parameter with the right shape. For layer-streamed
  // quantization (framework/stream_quantize.h), which loads one layer at a time; `device` is then
  // the caller's to apply per layer.
  bool defer_weights = false;
};

// Every parameter of the network must be in the checkpoint with the expected shape (lm_head.weight may
// be absent when embeddings are tied); otherwise an error names the tensor, the file and the shapes.
std::shared_ptr<LlamaForCausalLM> load_llama(const std::filesystem::path& model_dir, const LoadOptions& options = {});

// Copies the checkpoint's tensors into an already built network (same rules as load_llama).
void load_llama_weights(LlamaForCausalLM& network, const std::filesystem::path& model_dir);

torch::ScalarType parse_compute_dtype(const std::string& name);  // "float32" | "bfloat16" | "float16"

}  // namespace ptq
