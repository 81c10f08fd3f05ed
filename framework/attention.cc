#include "framework/attention.h"

#include <torch/torch.h>

#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq {

torch::Tensor grouped_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& allowed, double scale) {
  PTQ_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: expected 4-d q, k, v, got {}, {}, {}",
            q.dim(), k.dim(), v.dim());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2);
  PTQ_CHECK(H % Hkv == 0, "attention: {} query heads is not a multiple of {} KV heads", H, Hkv);
  const int64_t G = H / Hkv;
  // [B, Hkv, G*T, D] x [B, Hkv, D, S]: one batched matmul per KV head serves its whole query group.
  auto qg = q.reshape({B, Hkv, G * T, D}).to(torch::kFloat32);
  auto scores = torch::matmul(qg, k.to(torch::kFloat32).transpose(-1, -2)).mul_(scale);  // [B, Hkv, G*T, S]
  if (allowed.defined()) {
    auto mask = allowed.view({B, 1, 1, T, S}).expand({B, Hkv, G, T, S}).reshape({B, Hkv, G * T, S});
    // A finite fill keeps fully-masked rows (padding queries) finite instead of NaN.
    scores.masked_fill_(mask.logical_not(), std::numeric_limits<float>::lowest());
  }
  auto probs = torch::softmax(scores, -1);
  auto out = torch::matmul(probs, v.to(torch::kFloat32));  // [B, Hkv, G*T, D]
  return out.reshape({B, H, T, D}).to(q.scalar_type());
}

torch::Tensor causal_attention_mask(const torch::Tensor& key_valid, int64_t past, int64_t new_tokens) {
  const int64_t S = past + new_tokens;
  PTQ_CHECK(key_valid.dim() == 2 && key_valid.size(1) == S, "attention mask: key_valid must be [B, {}], got {}", S,
            key_valid.sizes());
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(key_valid.device());
  auto query_pos = torch::arange(past, S, opts).view({new_tokens, 1});
  auto key_pos = torch::arange(0, S, opts).view({1, S});
  auto causal = key_pos.le(query_pos);  // [T, S]
  return causal.unsqueeze(0).logical_and(key_valid.to(torch::kBool).unsqueeze(1));  // [B, T, S]
}

}  // namespace ptq
