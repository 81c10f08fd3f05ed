// The int8 KV-cache state of a network: which slots hold which format, how static scales are stored in
// a checkpoint, and how load_checkpoint restores them. Kept apart from the linear layout
// (checkpoint_layout.h) because it belongs to the KV-cache slots, not to linears.
//
// Checkpoint tensors of a slot with static per-channel scales (slot path "<attn>.kv_cache"):
//   <attn>.kv_cache.k_scale   float32 [Hkv, D]   ptq's per-channel scales (max |k| / 127)
//   <attn>.kv_cache.v_scale   float32 [Hkv, D]
//   <attn>.k_scale            float32 [1]        per-tensor scale (max of the above), the name vLLM /
//   <attn>.v_scale            float32 [1]        compressed-tensors read; ptq reads the per-channel ones
// Dynamic per-token caches store nothing: config.json's kv_cache_scheme (and ptq's config) say so.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/kv_quant.h"
#include "framework/ptq_config.h"
#include "framework/safetensors.h"

namespace ptq {

// Every KV-cache slot below `root`, in registration order.
std::vector<std::shared_ptr<KVCacheSlotImpl>> collect_kv_cache_slots(torch::nn::Module& root);

// The int8 cache format for `params` from backend `requested` ("auto" or a name), falling back to the
// reference backend. The backend is chosen per cache, by the device the cache is created on
// (select_backend's policy, with supports_kv in place of supports).
std::shared_ptr<KVCacheFormat> make_int8_kv_cache_format(const std::string& requested, const KVQuantParams& params);

// Save: name -> tensor for every slot with a static int8 format (the table above).
std::map<std::string, torch::Tensor> kv_scale_tensors(const CausalLM& net);

// config.json's quantization_config.kv_cache_scheme (compressed-tensors' QuantizationArgs), or null.
nlohmann::json kv_cache_scheme_json(const PTQConfig& config);

// Load: when `config` quantizes the KV cache, installs the int8 format in every slot of `net` (static
// scales read from `store`, checked for shape; each name read is added to `used`).
void load_kv_cache_quantization(const TensorStore& store, const PTQConfig& config, CausalLM& net,
                                std::set<std::string>& used);

}  // namespace ptq
