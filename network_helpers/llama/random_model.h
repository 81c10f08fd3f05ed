// Llama-shaped networks with random weights, written as Hugging Face folders: tiny ones for the core
// tests (no downloads, no ../shared), and real-sized ones (TinyLlama-1.1B, Llama-2-7B shapes) for
// benchmarks. Written tensor by tensor through the shard writer, so a 7B folder needs little memory.
#pragma once

#include <filesystem>
#include <string>

#include "network_helpers/llama/model_spec.h"

namespace ptq {

struct RandomModelOptions {
  std::string dtype = "bfloat16";  // stored dtype: float32 | bfloat16 | float16
  uint64_t seed = 0;
  double init_std = 0.02;
  bool write_tokenizer = true;     // a byte-level BPE tokenizer.json (needs vocab_size >= 259)
};

// A config.json for a named shape: "tinyllama-1.1b", "llama2-7b", "tiny" (a 2-layer test model).
nlohmann::json preset_config(const std::string& preset);

// Writes config.json, model.safetensors (sharded above 2 GB) and optionally tokenizer.json.
void write_random_llama(const std::filesystem::path& dir, const nlohmann::json& config,
                        const RandomModelOptions& options = {});

// A minimal Hugging Face tokenizer.json: ByteLevel pre-tokenizer, the 256 byte symbols as ids 3..258,
// specials <|bos|>=0, <|eos|>=1, <|pad|>=2, no merges, BOS added by the post-processor.
nlohmann::json byte_level_tokenizer_json();

}  // namespace ptq
