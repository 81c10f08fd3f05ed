#include "network_helpers/llama/model_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>

#include "framework/error.h"

namespace ptq {
namespace {
using nlohmann::json;

template <typename T>
T required(const json& config, const char* key, const std::string& source) {
  PTQ_CHECK(config.contains(key), "{}: missing key \"{}\"", source, key);
  try {
    return config.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: key \"{}\" has value {}, expected a {}", source, key, config.at(key).dump(),
         std::is_floating_point_v<T> ? "number" : std::is_integral_v<T> ? "integer" : "string");
  }
}

template <typename T>
T optional_value(const json& config, const char* key, T fallback, const std::string& source) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  return required<T>(config, key, source);
}

std::optional<int64_t> optional_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v.front().is_number_integer()) return v.front().get<int64_t>();
  return std::nullopt;
}

RopeScaling parse_rope_scaling(const json& block, const std::string& source, const std::string& key) {
  RopeScaling s;
  std::string type = block.value("rope_type", block.value("type", std::string("default")));
  if (type == "default") return s;
  s.type = type;
  if (type == "linear") {
    s.factor = required<double>(block, "factor", source + " " + key);
  } else if (type == "llama3") {
    s.factor = required<double>(block, "factor", source + " " + key);
    s.low_freq_factor = required<double>(block, "low_freq_factor", source + " " + key);
    s.high_freq_factor = required<double>(block, "high_freq_factor", source + " " + key);
    s.original_max_position_embeddings =
        required<int64_t>(block, "original_max_position_embeddings", source + " " + key);
  } else {
    fail("{}: {}.rope_type \"{}\" is not supported, expected one of default, linear, llama3", source, key, type);
  }
  return s;
}
}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
  return names;
}

ModelSpec ModelSpec::from_json(const json& config, const std::string& source) {
  PTQ_CHECK(config.is_object(), "{}: expected a JSON object", source);
  ModelSpec s;
  s.raw = config;
  PTQ_CHECK(config.contains("architectures") && config["architectures"].is_array() &&
                !config["architectures"].empty() && config["architectures"][0].is_string(),
            "{}: missing \"architectures\" (expected e.g. [\"LlamaForCausalLM\"])", source);
  s.architecture = config["architectures"][0].get<std::string>();
  const auto& archs = supported_architectures();
  PTQ_CHECK(std::find(archs.begin(), archs.end(), s.architecture) != archs.end(),
            "{}: architecture \"{}\" is not supported, expected one of {}", source, s.architecture,
            fmt::join(archs, ", "));
  s.model_type = optional_value<std::string>(config, "model_type", "", source);
  s.vocab_size = required<int64_t>(config, "vocab_size", source);
  s.hidden_size = required<int64_t>(config, "hidden_size", source);
  s.intermediate_size = required<int64_t>(config, "intermediate_size", source);
  s.num_layers = required<int64_t>(config, "num_hidden_layers", source);
  s.num_heads = required<int64_t>(config, "num_attention_heads", source);
  s.num_kv_heads = optional_value<int64_t>(config, "num_key_value_heads", s.num_heads, source);
  PTQ_CHECK(s.num_heads > 0 && s.hidden_size > 0 && s.num_layers > 0 && s.vocab_size > 0 && s.intermediate_size > 0,
            "{}: sizes must be positive (hidden_size {}, num_attention_heads {}, num_hidden_layers {})", source,
            s.hidden_size, s.num_heads, s.num_layers);
  s.head_dim = optional_value<int64_t>(config, "head_dim", s.hidden_size / s.num_heads, source);
  PTQ_CHECK(s.num_kv_heads > 0 && s.num_heads % s.num_kv_heads == 0,
            "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, s.num_heads,
            s.num_kv_heads);
  PTQ_CHECK(s.head_dim % 2 == 0, "{}: head_dim {} must be even for rotary embeddings", source, s.head_dim);
  s.max_position_embeddings = optional_value<int64_t>(config, "max_position_embeddings", 2048, source);
  s.rms_norm_eps = optional_value<double>(config, "rms_norm_eps", 1e-6, source);
  s.tie_word_embeddings = optional_value<bool>(config, "tie_word_embeddings", false, source);
  const std::string act = optional_value<std::string>(config, "hidden_act", "silu", source);
  PTQ_CHECK(act == "silu", "{}: hidden_act \"{}\" is not supported, expected \"silu\"", source, act);

  // RoPE: transformers 5.x nests theta and scaling in rope_parameters; older files keep them top-level.
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) {
    const json& rp = config["rope_parameters"];
    s.rope_theta = optional_value<double>(rp, "rope_theta", 10000.0, source + " rope_parameters");
    s.rope_scaling = parse_rope_scaling(rp, source, "rope_parameters");
  } else {
    s.rope_theta = optional_value<double>(config, "rope_theta", 10000.0, source);
    if (config.contains("rope_scaling") && config["rope_scaling"].is_object())
      s.rope_scaling = parse_rope_scaling(config["rope_scaling"], source, "rope_scaling");
  }

  if (s.architecture == "Qwen2ForCausalLM") {
    s.qkv_bias = true;  // Qwen2 has biases on q, k, v (not o) whatever the config says
  } else {
    bool attention_bias = optional_value<bool>(config, "attention_bias", false, source);
    s.qkv_bias = s.o_bias = attention_bias;
  }
  s.mlp_bias = optional_value<bool>(config, "mlp_bias", false, source);
  bool uses_window = s.architecture == "MistralForCausalLM" ||
                     optional_value<bool>(config, "use_sliding_window", false, source);
  if (uses_window && config.contains("sliding_window") && config["sliding_window"].is_number_integer())
    s.sliding_window = config["sliding_window"].get<int64_t>();

  if (config.contains("dtype") && config["dtype"].is_string()) {
    s.weights_dtype = config["dtype"].get<std::string>();
  } else if (config.contains("torch_dtype") && config["torch_dtype"].is_string()) {
    s.weights_dtype = config["torch_dtype"].get<std::string>();
  }
  s.bos_token_id = optional_token(config, "bos_token_id");
  s.eos_token_id = optional_token(config, "eos_token_id");
  return s;
}

ModelSpec ModelSpec::from_file(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  PTQ_CHECK(in.good(), "{}: cannot open the model config (expected a Hugging Face config.json)",
            config_json.string());
  json config;
  try {
    config = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", config_json.string(), e.what());
  }
  return from_json(config, config_json.string());
}

json ModelSpec::to_json() const {
  json out = raw;
  out.erase("rope_parameters");
  out.erase("dtype");
  out["rope_theta"] = rope_theta;
  if (rope_scaling.type != "default") {
    json rs = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == "llama3") {
      rs["low_freq_factor"] = rope_scaling.low_freq_factor;
      rs["high_freq_factor"] = rope_scaling.high_freq_factor;
      rs["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    out["rope_scaling"] = rs;
  }
  out["torch_dtype"] = weights_dtype;
  return out;
}

int64_t ModelSpec::parameter_count() const {
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  int64_t attention = hidden_size * q + 2 * hidden_size * kv + q * hidden_size;
  if (qkv_bias) attention += q + 2 * kv;
  if (o_bias) attention += hidden_size;
  int64_t mlp = 3 * hidden_size * intermediate_size + (mlp_bias ? 2 * intermediate_size + hidden_size : 0);
  int64_t per_layer = attention + mlp + 2 * hidden_size;
  int64_t embeddings = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return embeddings + num_layers * per_layer + hidden_size;
}

}  // namespace ptq
