// Writes the demo model as a Hugging Face model folder: config.json (LlamaForCausalLM, classic
// transformers spelling: rope_theta top-level, torch_dtype), generation_config.json,
// model.safetensors (bfloat16, tensor names = the network's named_parameters(), which are Hugging
// Face's; no lm_head.weight when the embeddings are tied), tokenizer.json and
// tokenizer_config.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "network_helpers/llama/llama_model.h"
#include "tools/make_demo_model/bpe_trainer.h"

namespace ptq::demo {

// The shape of a Llama network with the demo tokenizer's specials (<|bos|>=0, <|eos|>=1,
// <|pad|>=2).
struct LlamaShape {
  int64_t vocab_size = 2048;
  int64_t hidden_size = 256;
  int64_t intermediate_size = 512;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 64;
  int64_t max_position_embeddings = 512;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = true;
};

// config.json, keys in the order transformers writes them.
nlohmann::ordered_json llama_config_json(const LlamaShape& shape, const std::string& torch_dtype);

// Writes every file into `dir` (created when missing; existing files of the same names are
// replaced). Returns the size of model.safetensors in bytes.
int64_t write_model_folder(const std::filesystem::path& dir, LlamaForCausalLM& network,
                           const nlohmann::ordered_json& config, const BpeVocabulary& vocabulary);

}  // namespace ptq::demo
