#include "network_helpers/llama/llama2c_import.h"

#include <torch/torch.h>

#include <fstream>

#include "framework/error.h"
#include "framework/safetensors.h"

namespace ptq {
namespace fs = std::filesystem;
namespace {

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// Reads consecutive float32 arrays from the file's bytes.
class FloatReader {
 public:
  FloatReader(const std::vector<char>& bytes, size_t offset, const fs::path& path)
      : bytes_(bytes), offset_(offset), path_(path) {}
  torch::Tensor next(std::vector<int64_t> shape, const char* what) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const size_t need = static_cast<size_t>(n) * sizeof(float);
    PTQ_CHECK(offset_ + need <= bytes_.size(), "{}: file ends inside {} (needs {} more bytes at offset {})",
              path_.string(), what, need, offset_);
    auto t = torch::empty(shape, torch::kFloat32);
    std::memcpy(t.data_ptr<float>(), bytes_.data() + offset_, need);
    offset_ += need;
    return t;
  }
  void skip(size_t n_floats) { offset_ += n_floats * sizeof(float); }
  size_t offset() const { return offset_; }

 private:
  const std::vector<char>& bytes_;
  size_t offset_;
  fs::path path_;
};

// Interleaved (x0, x1), (x2, x3)... RoPE pairs -> rotate_half halves, per head.
torch::Tensor permute_for_rotate_half(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}
}  // namespace

Llama2cImport import_llama2c(const fs::path& checkpoint, const fs::path& tokenizer_bin, const fs::path& out_dir) {
  std::ifstream in(checkpoint, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the llama2.c checkpoint", checkpoint.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PTQ_CHECK(bytes.size() >= sizeof(Header), "{}: {} bytes is too short for a llama2.c header", checkpoint.string(),
            bytes.size());

  uint32_t magic = 0;
  std::memcpy(&magic, bytes.data(), 4);
  Header h{};
  size_t offset = 0;
  bool shared_classifier = false;
  int version = 0;
  if (magic == 0x616b3432) {  // "ak42": export.py version 1/2 with a 256-byte header
    std::memcpy(&version, bytes.data() + 4, 4);
    PTQ_CHECK(version == 1, "{}: llama2.c export version {} is not supported (only 0 and 1, the fp32 ones)",
              checkpoint.string(), version);
    std::memcpy(&h, bytes.data() + 8, sizeof(Header));
    shared_classifier = bytes[8 + sizeof(Header)] != 0;
    offset = 256;
  } else {
    std::memcpy(&h, bytes.data(), sizeof(Header));
    shared_classifier = h.vocab_size > 0;  // legacy: a negative vocab size flags a separate classifier
    h.vocab_size = std::abs(h.vocab_size);
    offset = sizeof(Header);
  }
  PTQ_CHECK(h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 &&
                h.vocab_size > 0 && h.seq_len > 0 && h.dim % h.n_heads == 0 && h.n_heads % h.n_kv_heads == 0,
            "{}: implausible llama2.c header (dim {}, hidden_dim {}, layers {}, heads {}, kv heads {}, vocab {}, "
            "seq_len {})",
            checkpoint.string(), h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len);

  const int64_t L = h.n_layers, C = h.dim, F = h.hidden_dim, V = h.vocab_size;
  const int64_t head = C / h.n_heads, kv = head * h.n_kv_heads;
  FloatReader r(bytes, offset, checkpoint);
  torch::Tensor emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
  if (version == 0) {
    emb = r.next({V, C}, "token_embedding");
    rms_att = r.next({L, C}, "rms_att");
    wq = r.next({L, C, C}, "wq");
    wk = r.next({L, kv, C}, "wk");
    wv = r.next({L, kv, C}, "wv");
    wo = r.next({L, C, C}, "wo");
    rms_ffn = r.next({L, C}, "rms_ffn");
    w1 = r.next({L, F, C}, "w1");
    w2 = r.next({L, C, F}, "w2");
    w3 = r.next({L, F, C}, "w3");
    rms_final = r.next({C}, "rms_final");
    r.skip(static_cast<size_t>(h.seq_len) * head);  // freq_cis_real and freq_cis_imag (recomputed)
  } else {
    rms_att = r.next({L, C}, "attention norms");
    rms_ffn = r.next({L, C}, "ffn norms");
    rms_final = r.next({C}, "final norm");
    emb = r.next({V, C}, "token_embedding");
    wq = r.next({L, C, C}, "wq");
    wk = r.next({L, kv, C}, "wk");
    wv = r.next({L, kv, C}, "wv");
    wo = r.next({L, C, C}, "wo");
    w1 = r.next({L, F, C}, "w1");
    w2 = r.next({L, C, F}, "w2");
    w3 = r.next({L, F, C}, "w3");
  }
  if (!shared_classifier) wcls = r.next({V, C}, "wcls");
  PTQ_CHECK(r.offset() == bytes.size(), "{}: {} trailing bytes after the weights (header and size disagree)",
            checkpoint.string(), bytes.size() - r.offset());

  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", C},
                           {"intermediate_size", F},
                           {"num_hidden_layers", L},
                           {"num_attention_heads", h.n_heads},
                           {"num_key_value_heads", h.n_kv_heads},
                           {"head_dim", head},
                           {"vocab_size", V},
                           {"max_position_embeddings", h.seq_len},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"hidden_act", "silu"},
                           {"tie_word_embeddings", shared_classifier},
                           {"bos_token_id", 1},
                           {"eos_token_id", 2},
                           {"torch_dtype", "float32"},
                           {"ptq_source", "llama2.c " + checkpoint.filename().string()}};
  ModelSpec spec = ModelSpec::from_json(config, checkpoint.string());

  NamedTensors tensors = {{"model.embed_tokens.weight", emb}, {"model.norm.weight", rms_final}};
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    tensors.emplace_back(p + "input_layernorm.weight", rms_att[i]);
    tensors.emplace_back(p + "post_attention_layernorm.weight", rms_ffn[i]);
    tensors.emplace_back(p + "self_attn.q_proj.weight", permute_for_rotate_half(wq[i], h.n_heads));
    tensors.emplace_back(p + "self_attn.k_proj.weight", permute_for_rotate_half(wk[i], h.n_kv_heads));
    tensors.emplace_back(p + "self_attn.v_proj.weight", wv[i].contiguous());
    tensors.emplace_back(p + "self_attn.o_proj.weight", wo[i].contiguous());
    tensors.emplace_back(p + "mlp.gate_proj.weight", w1[i].contiguous());
    tensors.emplace_back(p + "mlp.down_proj.weight", w2[i].contiguous());
    tensors.emplace_back(p + "mlp.up_proj.weight", w3[i].contiguous());
  }
  if (!shared_classifier) tensors.emplace_back("lm_head.weight", wcls);

  fs::create_directories(out_dir);
  write_safetensors(out_dir / "model.safetensors", tensors, {{"format", "pt"}});
  {
    std::ofstream out(out_dir / "config.json");
    out << config.dump(2) << "\n";
    PTQ_CHECK(out.good(), "{}: cannot write config.json", out_dir.string());
  }
  if (!tokenizer_bin.empty()) {
    PTQ_CHECK(fs::is_regular_file(tokenizer_bin), "{}: tokenizer file not found", tokenizer_bin.string());
    fs::copy_file(tokenizer_bin, out_dir / "tokenizer.bin", fs::copy_options::overwrite_existing);
  }
  return {spec, out_dir};
}

}  // namespace ptq
