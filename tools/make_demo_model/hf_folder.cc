#include "tools/make_demo_model/hf_folder.h"

#include <torch/torch.h>

#include <fstream>

#include "framework/error.h"
#include "framework/safetensors.h"

namespace ptq::demo {
namespace fs = std::filesystem;

nlohmann::ordered_json llama_config_json(const LlamaShape& s, const std::string& torch_dtype) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 0},
          {"eos_token_id", 1},
          {"head_dim", s.head_dim},
          {"hidden_act", "silu"},
          {"hidden_size", s.hidden_size},
          {"initializer_range", 0.02},
          {"intermediate_size", s.intermediate_size},
          {"max_position_embeddings", s.max_position_embeddings},
          {"mlp_bias", false},
          {"model_type", "llama"},
          {"num_attention_heads", s.num_heads},
          {"num_hidden_layers", s.num_layers},
          {"num_key_value_heads", s.num_kv_heads},
          {"pad_token_id", 2},
          {"pretraining_tp", 1},
          {"rms_norm_eps", s.rms_norm_eps},
          {"rope_scaling", nullptr},
          {"rope_theta", s.rope_theta},
          {"tie_word_embeddings", s.tie_word_embeddings},
          {"torch_dtype", torch_dtype},
          {"use_cache", true},
          {"vocab_size", s.vocab_size}};
}

namespace {

void write_json(const fs::path& path, const nlohmann::ordered_json& value) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << value.dump(2) << "\n";
  out.close();
  PTQ_CHECK(out.good(), "{}: cannot write the file", path.string());
}

}  // namespace

int64_t write_model_folder(const fs::path& dir, LlamaForCausalLM& network,
                           const nlohmann::ordered_json& config, const BpeVocabulary& vocabulary) {
  fs::create_directories(dir);
  const std::string dtype_name = config.value("torch_dtype", std::string("float32"));
  PTQ_CHECK(dtype_name == "bfloat16" || dtype_name == "float32",
            "{}: config torch_dtype \"{}\", expected bfloat16 or float32", dir.string(),
            dtype_name);
  const torch::ScalarType dtype = dtype_name == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  NamedTensors tensors;
  for (auto& item : network.named_parameters()) {
    if (item.key() == "lm_head.weight" && network.spec().tie_word_embeddings) continue;
    tensors.emplace_back(item.key(), item.value().detach().to(dtype).contiguous());
  }
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});

  write_json(dir / "config.json", config);
  write_json(dir / "generation_config.json",
             {{"bos_token_id", 0}, {"eos_token_id", 1}, {"pad_token_id", 2}, {"do_sample", false}});
  write_json(dir / "tokenizer_config.json",
             {{"bos_token", "<|bos|>"},
              {"eos_token", "<|eos|>"},
              {"pad_token", "<|pad|>"},
              {"add_bos_token", true},
              {"model_max_length", config.value("max_position_embeddings", 512)},
              {"tokenizer_class", "PreTrainedTokenizerFast"}});
  write_json(dir / "tokenizer.json", tokenizer_json(vocabulary));
  return int64_t(fs::file_size(dir / "model.safetensors"));
}

}  // namespace ptq::demo
