#include "network_helpers/llama/llama_network_helper.h"

#include <torch/torch.h>

#include "framework/attention.h"
#include "framework/error.h"
#include "network_helpers/eval/generation.h"
#include "network_helpers/llama/rotary.h"
#include "network_helpers/tokenizer/load_tokenizer.h"

namespace ptq {

LlamaNetworkHelper::LlamaNetworkHelper(std::filesystem::path model_dir, LoadOptions options)
    : model_dir_(std::move(model_dir)), options_(options), spec_(ModelSpec::from_file(model_dir_ / "config.json")) {}

std::shared_ptr<CausalLM> LlamaNetworkHelper::create_network() { return load_llama(model_dir_, options_); }

nlohmann::json LlamaNetworkHelper::get_spec(const std::string& name) const {
  // Derived values first (they may be absent from config.json), then the file itself.
  if (name == "head_dim") return spec_.head_dim;
  if (name == "num_key_value_heads") return spec_.num_kv_heads;
  if (name == "rope_theta") return spec_.rope_theta;
  if (name == "architecture") return spec_.architecture;
  PTQ_CHECK(spec_.raw.contains(name), "{}: the model spec has no key \"{}\"", (model_dir_ / "config.json").string(),
            name);
  return spec_.raw.at(name);
}

std::shared_ptr<Tokenizer> LlamaNetworkHelper::create_tokenizer() {
  if (!tokenizer_) tokenizer_ = load_tokenizer(model_dir_);
  return tokenizer_;
}

std::pair<torch::Tensor, torch::Tensor> LlamaNetworkHelper::assemble_inputs(
    const std::vector<std::vector<int64_t>>& batch) const {
  int64_t pad_id = 0;
  if (spec_.raw.contains("pad_token_id") && spec_.raw["pad_token_id"].is_number_integer())
    pad_id = spec_.raw["pad_token_id"].get<int64_t>();
  return left_pad(batch, pad_id);
}

std::vector<std::vector<int64_t>> LlamaNetworkHelper::generate(CausalLM& network,
                                                               const std::vector<std::vector<int64_t>>& prompts,
                                                               const GenerationOptions& options) {
  std::optional<int64_t> eos = spec_.eos_token_id;
  if (!eos) eos = create_tokenizer()->eos_id();
  auto [ids, mask] = assemble_inputs(prompts);
  return generate_tokens(network, prompts, ids, mask, options, eos);
}

std::vector<ScalingGroup> LlamaNetworkHelper::scaling_groups(CausalLM& network, int64_t layer_index) {
  auto* llama = dynamic_cast<LlamaForCausalLM*>(&network);
  PTQ_CHECK(llama != nullptr, "LlamaNetworkHelper: network is a {}, expected a Llama-family network",
            network.architecture());
  LlamaDecoderLayer layer = llama->layer(layer_index);
  auto attn = layer->self_attn;
  auto mlp = layer->mlp;
  const std::string prefix = "model.layers." + std::to_string(layer_index) + ".";
  std::vector<ScalingGroup> groups;

  ScalingGroup qkv;
  qkv.name = prefix + "input_layernorm -> q_proj,k_proj,v_proj";
  qkv.producer_path = prefix + "input_layernorm";
  qkv.producer_weight = layer->input_layernorm->weight;
  qkv.consumers = {attn->q_proj.ptr(), attn->k_proj.ptr(), attn->v_proj.ptr()};
  // The whole attention block, causal, positions 0..T-1 (calibration samples start at position 0).
  qkv.inspect = [llama, layer_index](const torch::Tensor& x) {
    LlamaDecoderLayer l = llama->layer(layer_index);
    const int64_t B = x.size(0), T = x.size(1);
    auto positions = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(x.device()))
                         .unsqueeze(0).expand({B, T});
    AttentionContext ctx;
    std::tie(ctx.cos, ctx.sin) = rope_cos_sin(rope_inverse_frequencies(llama->spec()), positions);
    ctx.allowed = causal_attention_mask(torch::ones({B, T}, torch::TensorOptions().dtype(torch::kBool).device(x.device())), 0, T);
    auto cache = l->self_attn->kv_cache->create(l->self_attn->cache_shape(B, T, x.scalar_type(), x.device()));
    ctx.cache = cache.get();
    return l->self_attn->forward(x, ctx);
  };
  groups.push_back(std::move(qkv));

  // v -> o only when every o_proj input column has its own v output row (no GQA sharing).
  if (attn->num_heads == attn->num_kv_heads) {
    ScalingGroup vo;
    vo.name = prefix + "self_attn.v_proj -> o_proj";
    vo.producer_path = prefix + "self_attn.v_proj";
    vo.producer_weight = attn->v_proj->weight;
    vo.producer_bias = attn->v_proj->bias;
    vo.consumers = {attn->o_proj.ptr()};
    auto o = attn->o_proj;
    vo.inspect = [o](const torch::Tensor& x) mutable { return o->forward(x); };
    groups.push_back(std::move(vo));
  }

  ScalingGroup gate_up;
  gate_up.name = prefix + "post_attention_layernorm -> gate_proj,up_proj";
  gate_up.producer_path = prefix + "post_attention_layernorm";
  gate_up.producer_weight = layer->post_attention_layernorm->weight;
  gate_up.consumers = {mlp->gate_proj.ptr(), mlp->up_proj.ptr()};
  gate_up.inspect = [mlp](const torch::Tensor& x) mutable { return mlp->forward(x); };
  groups.push_back(std::move(gate_up));

  ScalingGroup down;
  down.name = prefix + "mlp.up_proj -> down_proj";
  down.producer_path = prefix + "mlp.up_proj";
  down.producer_weight = mlp->up_proj->weight;
  down.producer_bias = mlp->up_proj->bias;
  down.consumers = {mlp->down_proj.ptr()};
  auto down_proj = mlp->down_proj;
  down.inspect = [down_proj](const torch::Tensor& x) mutable { return down_proj->forward(x); };
  groups.push_back(std::move(down));
  return groups;
}

}  // namespace ptq
