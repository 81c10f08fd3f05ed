#include "network_helpers/llama/llama_model.h"

#include <torch/torch.h>

#include "framework/attention.h"
#include "framework/deferred_weights.h"
#include "framework/error.h"
#include "framework/torch_format.h"
#include "network_helpers/llama/rotary.h"

namespace ptq {

RMSNormImpl::RMSNormImpl(int64_t size, double eps_) : eps(eps_) {
  weight = register_parameter("weight", deferred_weights_active() ? deferred_placeholder({size}) : torch::ones({size}),
                              /*requires_grad=*/false);
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim) {
  weight = register_parameter(
      "weight", deferred_weights_active() ? deferred_placeholder({vocab, dim}) : torch::randn({vocab, dim}) * 0.02,
      /*requires_grad=*/false);
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

LlamaAttentionImpl::LlamaAttentionImpl(const ModelSpec& spec)
    : num_heads(spec.num_heads), num_kv_heads(spec.num_kv_heads), head_dim(spec.head_dim) {
  const int64_t C = spec.hidden_size;
  q_proj = register_module("q_proj", Linear(C, num_heads * head_dim, spec.qkv_bias));
  k_proj = register_module("k_proj", Linear(C, num_kv_heads * head_dim, spec.qkv_bias));
  v_proj = register_module("v_proj", Linear(C, num_kv_heads * head_dim, spec.qkv_bias));
  o_proj = register_module("o_proj", Linear(num_heads * head_dim, C, spec.o_bias));
  kv_cache = register_module("kv_cache", KVCacheSlot());
}

KVCacheShape LlamaAttentionImpl::cache_shape(int64_t batch, int64_t capacity, torch::ScalarType dtype,
                                             torch::Device device) const {
  KVCacheShape shape;
  shape.batch = batch;
  shape.kv_heads = num_kv_heads;
  shape.head_dim = head_dim;
  shape.capacity = capacity;
  shape.dtype = dtype;
  shape.device = device;
  return shape;
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, num_heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  q = apply_rope(q, ctx.cos, ctx.sin);
  k = apply_rope(k, ctx.cos, ctx.sin);
  if (kv_cache->has_observers()) kv_cache->observe(k, v);
  ctx.cache->append(k, v);
  auto out = ctx.cache->attend(q, ctx.allowed, 1.0 / std::sqrt(static_cast<double>(head_dim)));  // [B, H, T, D]
  return o_proj(out.transpose(1, 2).reshape({B, T, num_heads * head_dim}));
}

LlamaMLPImpl::LlamaMLPImpl(const ModelSpec& spec) {
  gate_proj = register_module("gate_proj", Linear(spec.hidden_size, spec.intermediate_size, spec.mlp_bias));
  up_proj = register_module("up_proj", Linear(spec.hidden_size, spec.intermediate_size, spec.mlp_bias));
  down_proj = register_module("down_proj", Linear(spec.intermediate_size, spec.hidden_size, spec.mlp_bias));
}

torch::Tensor LlamaMLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const ModelSpec& spec) {
  input_layernorm = register_module("input_layernorm", RMSNorm(spec.hidden_size, spec.rms_norm_eps));
  self_attn = register_module("self_attn", LlamaAttention(spec));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(spec.hidden_size, spec.rms_norm_eps));
  mlp = register_module("mlp", LlamaMLP(spec));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& hidden, const AttentionContext& ctx) {
  auto h = hidden + self_attn(input_layernorm(hidden), ctx);
  return h + mlp(post_attention_layernorm(h));
}

LlamaBackboneImpl::LlamaBackboneImpl(const ModelSpec& spec) {
  embed_tokens = register_module("embed_tokens", Embedding(spec.vocab_size, spec.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < spec.num_layers; ++i) {
    layer_list.emplace_back(spec);
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", RMSNorm(spec.hidden_size, spec.rms_norm_eps));
}

LlamaForCausalLM::LlamaForCausalLM(const ModelSpec& spec) : spec_(spec) {
  model = register_module("model", LlamaBackbone(spec));
  lm_head = register_module("lm_head", Linear(spec.hidden_size, spec.vocab_size, false));
  if (spec.tie_word_embeddings) tie_embeddings();
  inv_freq_ = rope_inverse_frequencies(spec);
  // Slot paths are the checkpoint names: policies, reports and checkpoints all speak them.
  for (auto& item : named_modules("", /*include_self=*/false)) {
    if (auto linear = std::dynamic_pointer_cast<LinearImpl>(item.value())) linear->set_path(item.key());
    if (auto slot = std::dynamic_pointer_cast<KVCacheSlotImpl>(item.value())) slot->set_path(item.key());
  }
}

void LlamaForCausalLM::tie_embeddings() {
  // Through the registered parameter (what named_parameters() and checkpoints see): it must alias the
  // embedding's current storage, which a loader may have replaced (set_data) since construction.
  lm_head->replace_weight(model->embed_tokens->weight);
}

void LlamaForCausalLM::set_compute_dtype(torch::ScalarType dtype) {
  PTQ_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16,
            "compute dtype must be float32, bfloat16 or float16");
  torch::NoGradGuard no_grad;
  // A placeholder (a network built for layer-streamed quantization) gets a placeholder of the new
  // dtype: converting it would allocate the whole tensor.
  for (auto& p : parameters()) p.set_data(is_deferred(p) ? deferred_placeholder(p.sizes(), dtype) : p.to(dtype));
  if (spec_.tie_word_embeddings) tie_embeddings();
  compute_dtype_ = dtype;
}

std::shared_ptr<torch::nn::Module> LlamaForCausalLM::decoder_layer(int64_t index) {
  PTQ_CHECK(index >= 0 && index < spec_.num_layers, "decoder layer {} out of range [0, {})", index, spec_.num_layers);
  return model->layer_list[index].ptr();
}

torch::Tensor LlamaForCausalLM::embed(const torch::Tensor& input_ids) {
  return model->embed_tokens(input_ids);
}

AttentionContext LlamaForCausalLM::context(const torch::Tensor& positions, const torch::Tensor& allowed) const {
  AttentionContext ctx;
  std::tie(ctx.cos, ctx.sin) = rope_cos_sin(inv_freq_, positions);
  ctx.allowed = allowed;
  ctx.cache = nullptr;
  return ctx;
}

torch::Tensor LlamaForCausalLM::decoder_layer_forward(int64_t index, const torch::Tensor& hidden,
                                                      const torch::Tensor& position_ids) {
  auto& layer = model->layer_list.at(index);
  const int64_t B = hidden.size(0), T = hidden.size(1);
  auto key_valid = torch::ones({B, T}, torch::TensorOptions().dtype(torch::kBool).device(hidden.device()));
  AttentionContext ctx = context(position_ids, causal_attention_mask(key_valid, 0, T));
  auto cache = layer->self_attn->kv_cache->create(
      layer->self_attn->cache_shape(B, T, hidden.scalar_type(), hidden.device()));
  ctx.cache = cache.get();
  return layer->forward(hidden, ctx);
}

torch::Tensor LlamaForCausalLM::logits(const torch::Tensor& hidden) {
  return lm_head(model->norm(hidden)).to(torch::kFloat32);
}

std::unique_ptr<DecodeState> LlamaForCausalLM::new_state(int64_t batch, int64_t capacity) {
  auto state = std::make_unique<DecodeState>();
  auto device = model->embed_tokens->weight.device();
  for (auto& layer : model->layer_list)
    state->caches.push_back(
        layer->self_attn->kv_cache->create(layer->self_attn->cache_shape(batch, capacity, compute_dtype_, device)));
  state->key_valid = torch::zeros({batch, 0}, torch::TensorOptions().dtype(torch::kBool).device(device));
  state->next_position = torch::zeros({batch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  return state;
}

torch::Tensor LlamaForCausalLM::forward(const torch::Tensor& input_ids, DecodeState* state,
                                        const torch::Tensor& attention_mask) {
  return logits(decoder_stack(input_ids, state, attention_mask));
}

torch::Tensor LlamaForCausalLM::forward_last(const torch::Tensor& input_ids, DecodeState* state,
                                             const torch::Tensor& attention_mask) {
  torch::Tensor hidden = decoder_stack(input_ids, state, attention_mask);
  return logits(hidden.narrow(1, hidden.size(1) - 1, 1));  // the norm is per position: narrowing first is exact
}

torch::Tensor LlamaForCausalLM::decoder_stack(const torch::Tensor& input_ids, DecodeState* state,
                                              const torch::Tensor& attention_mask) {
  PTQ_CHECK(input_ids.dim() == 2, "forward: input_ids must be [batch, tokens], got {}", input_ids.sizes());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  std::unique_ptr<DecodeState> local;
  if (state == nullptr) {
    local = new_state(B, T);
    state = local.get();
  }
  PTQ_CHECK(state->key_valid.size(0) == B, "forward: batch {} does not match the decode state's batch {}", B,
            state->key_valid.size(0));
  const int64_t past = state->length();
  PTQ_CHECK(past + T <= spec_.max_position_embeddings,
            "forward: {} tokens exceed the model's max_position_embeddings {}", past + T,
            spec_.max_position_embeddings);
  if (spec_.sliding_window)
    PTQ_CHECK(past + T <= *spec_.sliding_window,
              "forward: {} tokens exceed the sliding window {} of this model (not implemented)", past + T,
              *spec_.sliding_window);
  auto device = model->embed_tokens->weight.device();
  auto ids = input_ids.to(device);
  auto mask = attention_mask.defined() ? attention_mask.to(device).to(torch::kInt64)
                                       : torch::ones({B, T}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  PTQ_CHECK(mask.sizes() == ids.sizes(), "forward: attention_mask {} does not match input_ids {}", mask.sizes(),
            ids.sizes());
  // Left padding: a sequence's real tokens take consecutive positions after its previous tokens.
  auto positions = state->next_position.unsqueeze(1) + (mask.cumsum(1) - 1).clamp_min(0);
  state->next_position = state->next_position + mask.sum(1);
  state->key_valid = torch::cat({state->key_valid, mask.to(torch::kBool)}, 1);

  AttentionContext ctx = context(positions, causal_attention_mask(state->key_valid, past, T));
  auto hidden = embed(ids);
  for (int64_t i = 0; i < spec_.num_layers; ++i) {
    ctx.cache = state->caches[i].get();
    hidden = model->layer_list[i]->forward(hidden, ctx);
  }
  return hidden;
}

}  // namespace ptq
