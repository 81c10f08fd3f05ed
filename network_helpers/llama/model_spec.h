// The model spec: what config.json says about a Llama-family network, in one validated struct.
// Accepts both spellings of the fields that transformers renamed in 5.x (rope_theta / rope_scaling
// -> rope_parameters, torch_dtype -> dtype): most published checkpoints use the first, new files the second.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace ptq {

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelSpec {
  std::string architecture;  // LlamaForCausalLM | MistralForCausalLM | Qwen2ForCausalLM
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama when attention_bias
  bool o_bias = false;    // Llama attention_bias covers o_proj too; Qwen2 has no o_proj bias
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;  // Mistral; attention beyond it is refused, not approximated
  std::string weights_dtype = "float32";  // dtype / torch_dtype of the stored weights
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  nlohmann::json raw;  // the whole config.json, for get_spec and for writing it back

  // `source` names the file in error messages.
  static ModelSpec from_json(const nlohmann::json& config, const std::string& source);
  static ModelSpec from_file(const std::filesystem::path& config_json);
  nlohmann::json to_json() const;  // config.json in the classic spelling (what most loaders read)
  int64_t parameter_count() const;
};

// The architectures this build can run, for error messages and `ptq inspect`.
const std::vector<std::string>& supported_architectures();

}  // namespace ptq
