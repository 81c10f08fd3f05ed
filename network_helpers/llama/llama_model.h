// The Llama family (Llama-2/3, Mistral, Qwen2) as LibTorch modules built from the framework's slots:
// every projection is a ptq::Linear and every attention stores keys/values through a ptq::KVCacheSlot.
// Parameter names follow Hugging Face's (model.layers.N.self_attn.q_proj.weight, ...), so a
// safetensors checkpoint maps onto named_parameters() one to one.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "framework/causal_lm.h"
#include "framework/kv_cache.h"
#include "framework/linear.h"
#include "network_helpers/llama/model_spec.h"

namespace ptq {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t size, double eps);
  // Normalizes in float32 (as transformers does), then scales in the input dtype.
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // [C]
  double eps;
};
TORCH_MODULE(RMSNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;  // [vocab, C]
};
TORCH_MODULE(Embedding);

// What one attention call needs besides its input: RoPE tables, the mask and the layer's cache.
struct AttentionContext {
  torch::Tensor cos, sin;  // [B, T, head_dim]
  torch::Tensor allowed;   // bool [B, T, S]
  KVCache* cache;
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const ModelSpec& spec);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx);
  KVCacheShape cache_shape(int64_t batch, int64_t capacity, torch::ScalarType dtype, torch::Device device) const;

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  KVCacheSlot kv_cache{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;
};
TORCH_MODULE(LlamaAttention);

class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const ModelSpec& spec);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const ModelSpec& spec);
  torch::Tensor forward(const torch::Tensor& hidden, const AttentionContext& ctx);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// Hugging Face's LlamaModel: embeddings, decoder layers, final norm (registered as "model").
class LlamaBackboneImpl : public torch::nn::Module {
 public:
  explicit LlamaBackboneImpl(const ModelSpec& spec);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<LlamaDecoderLayer> layer_list;  // typed views of `layers`
};
TORCH_MODULE(LlamaBackbone);

class LlamaForCausalLM : public CausalLM {
 public:
  explicit LlamaForCausalLM(const ModelSpec& spec);

  torch::Tensor forward(const torch::Tensor& input_ids, DecodeState* state = nullptr,
                        const torch::Tensor& attention_mask = {}) override;
  torch::Tensor forward_last(const torch::Tensor& input_ids, DecodeState* state = nullptr,
                             const torch::Tensor& attention_mask = {}) override;
  std::unique_ptr<DecodeState> new_state(int64_t batch, int64_t capacity) override;

  int64_t num_decoder_layers() const override { return spec_.num_layers; }
  std::shared_ptr<torch::nn::Module> decoder_layer(int64_t index) override;
  torch::Tensor embed(const torch::Tensor& input_ids) override;
  torch::Tensor decoder_layer_forward(int64_t index, const torch::Tensor& hidden,
                                      const torch::Tensor& position_ids) override;
  torch::Tensor logits(const torch::Tensor& hidden) override;

  int64_t vocab_size() const override { return spec_.vocab_size; }
  int64_t max_positions() const override { return spec_.max_position_embeddings; }
  torch::ScalarType compute_dtype() const override { return compute_dtype_; }
  std::string architecture() const override { return spec_.architecture; }
  nlohmann::json hf_config() const override { return spec_.raw.empty() ? spec_.to_json() : spec_.raw; }

  const ModelSpec& spec() const { return spec_; }
  LlamaDecoderLayer& layer(int64_t index) { return model->layer_list.at(index); }
  // Converts every parameter to `dtype` (float32 or bfloat16/float16) and remembers it as compute dtype.
  void set_compute_dtype(torch::ScalarType dtype);
  // Re-ties lm_head to the embeddings after the embedding weight tensor was replaced.
  void tie_embeddings();

  LlamaBackbone model{nullptr};
  Linear lm_head{nullptr};

 private:
  AttentionContext context(const torch::Tensor& positions, const torch::Tensor& allowed) const;
  // Embedding and every decoder layer (updating `state`, or a local one): the final hidden states [B, T, C].
  torch::Tensor decoder_stack(const torch::Tensor& input_ids, DecodeState* state, const torch::Tensor& attention_mask);
  ModelSpec spec_;
  torch::Tensor inv_freq_;
  torch::ScalarType compute_dtype_ = torch::kFloat32;
};

}  // namespace ptq
