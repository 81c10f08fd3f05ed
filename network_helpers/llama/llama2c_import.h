// Imports Karpathy's llama2.c checkpoints (.bin, legacy "version 0" and "version 1" fp32 exports) into a
// Hugging Face Llama folder, so that models trained outside ptq (e.g. tinyllamas stories260K) run here.
#pragma once

#include <filesystem>

#include "network_helpers/llama/model_spec.h"

namespace ptq {

struct Llama2cImport {
  ModelSpec spec;
  std::filesystem::path out_dir;
};

// Writes out_dir/config.json + model.safetensors (+ the tokenizer file copied as tokenizer.bin when
// given). llama2.c applies RoPE to interleaved pairs; q and k rows are permuted into Hugging Face's
// rotate_half layout (as transformers' own conversion script does), so the result is an ordinary
// LlamaForCausalLM folder.
Llama2cImport import_llama2c(const std::filesystem::path& checkpoint, const std::filesystem::path& tokenizer_bin,
                             const std::filesystem::path& out_dir);

}  // namespace ptq
