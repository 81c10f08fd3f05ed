// Int8 KV-cache quantization: the parameters, and the reference int8 cache (plain LibTorch, any device)
// that the CPU and CUDA fused attention kernels are tested against.
//
// Numerics (symmetric, float32 arithmetic, round half to even, codes clamped to [-128, 127]):
//   static per-channel:  one scale per (kv head, channel), calibrated offline:
//                        q[b, h, s, d] = clamp(round(k[b, h, s, d] / k_scale[h, d]), -128, 127)
//                        (a per-tensor or per-head scale is the same thing with a coarser block; the
//                        constructor broadcasts [] / [1] / [Hkv] to [Hkv, D])
//   dynamic per-token:   one scale per (batch, kv head, position), computed as the token arrives:
//                        scale[b, h, s] = max_d |k[b, h, s, d]| / 127   (an all-zero vector gets 1)
//   dequantize:          k' = q * scale, in float32, then cast to the cache's compute dtype
// Calibrated static scales follow the same rule: kv_scale_from_absmax(absmax) = absmax / 127.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "framework/kv_cache.h"

namespace ptq {

enum class KVQuantMode { kStaticPerChannel, kDynamicPerToken };

struct KVQuantParams {
  KVQuantMode mode = KVQuantMode::kDynamicPerToken;
  // Static only: float, positive. Accepted shapes: [] or [1] (per tensor), [Hkv] (per head), [Hkv * D]
  // (compressed-tensors' flat per-channel layout) or [Hkv, D]; caches see [Hkv, D].
  torch::Tensor k_scale;
  torch::Tensor v_scale;

  static KVQuantParams dynamic_per_token();
  static KVQuantParams static_per_channel(torch::Tensor k_scale, torch::Tensor v_scale);
  std::string to_string() const;  // "int8-static-per-channel" / "int8-dynamic-per-token"
};

// Broadcasts a static scale to float32 [kv_heads, head_dim]; throws naming `what` ("k_scale") when the
// shape is none of those accepted above or a value is not positive and finite.
torch::Tensor normalize_kv_scale(const torch::Tensor& scale, int64_t kv_heads, int64_t head_dim,
                                 const std::string& what);
// absmax / 127 (zeros become 1): the static scale for a calibrated absolute maximum of any shape.
torch::Tensor kv_scale_from_absmax(const torch::Tensor& absmax);

// The int8 codes of keys or values x [B, Hkv, T, D] (any float dtype, any device) by the rules above, and
// in dynamic mode their per-token scales float32 [B, Hkv, T] (undefined in static mode). static_scale:
// float32 [Hkv, D] as normalize_kv_scale returns it. Int8KVCache::append and the backends' int8 caches
// all quantize through this function, so every cache stores the same codes for the same inputs.
struct KVCodes {
  torch::Tensor codes;   // int8 [B, Hkv, T, D]
  torch::Tensor scales;  // dynamic: float32 [B, Hkv, T]
};
KVCodes quantize_kv(const torch::Tensor& x, KVQuantMode mode, const torch::Tensor& static_scale);

// Keys and values stored as int8 codes (plus per-token scales in dynamic mode), in buffers that grow by
// doubling. keys()/values() dequantize, so the default KVCache::attend (grouped_query_attention over the
// dequantized entries) is the reference int8 attention.
class Int8KVCache : public KVCache {
 public:
  Int8KVCache(const KVCacheShape& shape, const KVQuantParams& params);
  void append(const torch::Tensor& k, const torch::Tensor& v) override;
  torch::Tensor keys() const override;
  torch::Tensor values() const override;
  int64_t length() const override { return length_; }
  // Codes plus per-token scales; static scales are model parameters and not counted.
  int64_t memory_bytes() const override;
  std::string name() const override { return params_.to_string(); }

  // Raw storage, for fused kernels and tests.
  torch::Tensor key_codes() const;    // int8 [B, Hkv, S, D]
  torch::Tensor value_codes() const;  // int8 [B, Hkv, S, D]
  torch::Tensor key_scales() const;   // static: float32 [Hkv, D]; dynamic: float32 [B, Hkv, S]
  torch::Tensor value_scales() const;
  KVQuantMode mode() const { return params_.mode; }
  const KVCacheShape& shape() const { return shape_; }

 private:
  torch::Tensor dequantize(const torch::Tensor& codes, const torch::Tensor& scales) const;

  KVCacheShape shape_;
  KVQuantParams params_;        // static scales already [Hkv, D] float32 on shape.device
  torch::Tensor k_, v_;         // int8 [B, Hkv, capacity, D]
  torch::Tensor k_s_, v_s_;     // dynamic: float32 [B, Hkv, capacity]
  int64_t length_ = 0;
};

class Int8KVCacheFormat : public KVCacheFormat {
 public:
  explicit Int8KVCacheFormat(KVQuantParams params);
  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const override;
  std::string name() const override { return params_.to_string(); }
  const KVQuantParams& params() const { return params_; }

 private:
  KVQuantParams params_;
};

}  // namespace ptq
