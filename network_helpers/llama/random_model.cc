#include "network_helpers/llama/random_model.h"

#include <torch/torch.h>

#include <fstream>

#include "framework/error.h"
#include "framework/safetensors.h"
#include "network_helpers/llama/llama_loader.h"

namespace ptq {
namespace fs = std::filesystem;

nlohmann::json preset_config(const std::string& preset) {
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"tie_word_embeddings", false},
                      {"bos_token_id", 0},
                      {"eos_token_id", 1},
                      {"pad_token_id", 2}};
  if (preset == "tinyllama-1.1b") {
    c.update({{"hidden_size", 2048}, {"intermediate_size", 5632}, {"num_hidden_layers", 22},
              {"num_attention_heads", 32}, {"num_key_value_heads", 4}, {"vocab_size", 32000},
              {"max_position_embeddings", 2048}});
  } else if (preset == "llama2-7b") {
    c.update({{"hidden_size", 4096}, {"intermediate_size", 11008}, {"num_hidden_layers", 32},
              {"num_attention_heads", 32}, {"num_key_value_heads", 32}, {"vocab_size", 32000},
              {"max_position_embeddings", 4096}});
  } else if (preset == "tiny") {
    c.update({{"hidden_size", 64}, {"intermediate_size", 160}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 300},
              {"max_position_embeddings", 256}});
  } else {
    fail("unknown model preset \"{}\", expected tinyllama-1.1b, llama2-7b or tiny", preset);
  }
  return c;
}

nlohmann::json byte_level_tokenizer_json() {
  // GPT-2's byte -> printable code point map: printable Latin-1 bytes map to themselves, the rest to 256+.
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  std::vector<int> code(256, -1);
  for (int b : printable) code[b] = b;
  int extra = 0;
  for (int b = 0; b < 256; ++b)
    if (code[b] < 0) code[b] = 256 + extra++;
  auto utf8 = [](int cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  nlohmann::json vocab = nlohmann::json::object();
  vocab["<|bos|>"] = 0;
  vocab["<|eos|>"] = 1;
  vocab["<|pad|>"] = 2;
  for (int b = 0; b < 256; ++b) vocab[utf8(code[b])] = 3 + b;
  nlohmann::json added = nlohmann::json::array();
  const char* specials[] = {"<|bos|>", "<|eos|>", "<|pad|>"};
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {0}}, {"tokens", {"<|bos|>"}}}}}}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

void write_random_llama(const fs::path& dir, const nlohmann::json& config, const RandomModelOptions& options) {
  ModelSpec spec = ModelSpec::from_json(config, "random model config");
  fs::create_directories(dir);
  nlohmann::json written = config;
  written["torch_dtype"] = options.dtype;
  {
    std::ofstream out(dir / "config.json");
    out << written.dump(2) << "\n";
    PTQ_CHECK(out.good(), "{}: cannot write config.json", dir.string());
  }
  if (options.write_tokenizer) {
    PTQ_CHECK(spec.vocab_size >= 259, "random model: vocab_size {} is too small for the byte-level tokenizer (259)",
              spec.vocab_size);
    std::ofstream out(dir / "tokenizer.json");
    out << byte_level_tokenizer_json().dump() << "\n";
  }
  // Weights are generated one tensor at a time (a 7B model never sits in memory as a whole); the names
  // and shapes are Hugging Face's, which the loader checks against the network.
  torch::ScalarType dtype = parse_compute_dtype(options.dtype);
  auto gen = at::detail::createCPUGenerator(options.seed);
  SafetensorsShardWriter writer(dir, 2'000'000'000ull, {{"format", "pt"}});
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool is_norm) {
    torch::Tensor t = is_norm ? torch::ones(shape, torch::kFloat32)
                              : at::normal(0.0, options.init_std, shape, gen, torch::kFloat32);
    writer.add(name, t.to(dtype));
  };
  const int64_t C = spec.hidden_size, F = spec.intermediate_size, D = spec.head_dim;
  const int64_t q = spec.num_heads * D, kv = spec.num_kv_heads * D;
  add("model.embed_tokens.weight", {spec.vocab_size, C}, false);
  for (int64_t i = 0; i < spec.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {C}, true);
    add(p + "self_attn.q_proj.weight", {q, C}, false);
    add(p + "self_attn.k_proj.weight", {kv, C}, false);
    add(p + "self_attn.v_proj.weight", {kv, C}, false);
    add(p + "self_attn.o_proj.weight", {C, q}, false);
    if (spec.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {q}, false);
      add(p + "self_attn.k_proj.bias", {kv}, false);
      add(p + "self_attn.v_proj.bias", {kv}, false);
    }
    if (spec.o_bias) add(p + "self_attn.o_proj.bias", {C}, false);
    add(p + "post_attention_layernorm.weight", {C}, true);
    add(p + "mlp.gate_proj.weight", {F, C}, false);
    add(p + "mlp.up_proj.weight", {F, C}, false);
    add(p + "mlp.down_proj.weight", {C, F}, false);
    if (spec.mlp_bias) {
      add(p + "mlp.gate_proj.bias", {F}, false);
      add(p + "mlp.up_proj.bias", {F}, false);
      add(p + "mlp.down_proj.bias", {C}, false);
    }
  }
  add("model.norm.weight", {C}, true);
  if (!spec.tie_word_embeddings) add("lm_head.weight", {spec.vocab_size, C}, false);
  writer.finish();
}

}  // namespace ptq
