// Scaled dot-product attention with grouped-query heads, the float ground truth that fused kernels
// (int8 KV cache attention in backends) are tested against.
#pragma once

#include <torch/types.h>

namespace ptq {

// q: [B, H, T, D]; k, v: [B, Hkv, S, D] with H a multiple of Hkv (query head h reads KV head h / (H/Hkv),
// Hugging Face's repeat_kv order). allowed: bool [B, T, S] (true = may attend) or undefined (no mask).
// Softmax runs in fp32 whatever the input dtype. Returns [B, H, T, D] in q's dtype.
torch::Tensor grouped_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& allowed, double scale);

// allowed[b, t, s] for T new tokens appended after `past` cached ones: causal (s <= past + t) and
// key_valid[b, s] (false for left padding). key_valid: bool [B, past + T].
torch::Tensor causal_attention_mask(const torch::Tensor& key_valid, int64_t past, int64_t new_tokens);

}  // namespace ptq
