// The CPU backend's int8 KV cache: the codes and scales of framework/kv_quant.h (static per-channel or
// dynamic per-token, quantized by the same quantize_kv, so the codes are those of the reference
// Int8KVCache bit for bit), stored in the layout of kv_attention_avx512.h (keys in blocks of 16
// positions, channel-major inside a block), with an attend() that reads the int8 storage directly: no
// dequantized copy of the cache is ever made. Decode (T = 1) and prefill (T > 1, any mask) share one
// kernel; query rows that read the same KV head (the GQA heads of a token, or consecutive tokens) are
// processed eight at a time so the key and value codes are converted once per group.
//
// Differences from the reference attend (Int8KVCache::attend = dequantize + grouped_query_attention): the
// order of float32 sums, the scales folded into q and p instead of into k and v, and the polynomial exp
// (within ~1 ulp): tests/core/test_cpu_kv_attention.cc bounds the difference.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "framework/backend.h"
#include "framework/kv_quant.h"

namespace ptq::cpu {

// Whether the kernel runs on this machine (AVX-512), with the reason when not. Both int8 modes and any
// head_dim are supported; a cache on another device than the CPU is made as the reference cache.
Support int8_kv_attention_supports(const KVQuantParams& params);

class CpuInt8KVCache : public KVCache {
 public:
  CpuInt8KVCache(const KVCacheShape& shape, const KVQuantParams& params);
  void append(const torch::Tensor& k, const torch::Tensor& v) override;
  // Dequantized copies (tests, tools); attend() never calls them.
  torch::Tensor keys() const override;
  torch::Tensor values() const override;
  // q [B, H, T, D] (any float dtype, H a multiple of Hkv), allowed bool [B, T, S] or undefined.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const override;
  int64_t length() const override { return length_; }
  // Codes plus per-token scales of the stored positions, counted as Int8KVCache counts them.
  int64_t memory_bytes() const override;
  std::string name() const override { return params_.to_string() + "-cpu"; }

  // The storage in the reference layout (copies), for tests: int8 [B, Hkv, S, D]; scales as
  // Int8KVCache::key_scales (static float32 [Hkv, D], dynamic float32 [B, Hkv, S]).
  torch::Tensor key_codes() const;
  torch::Tensor value_codes() const;
  torch::Tensor key_scales() const;
  torch::Tensor value_scales() const;

 private:
  int64_t capacity() const { return v_.size(2); }
  torch::Tensor dequantize(const torch::Tensor& codes, const torch::Tensor& scales) const;

  KVCacheShape shape_;
  KVQuantParams params_;     // static scales float32 [Hkv, D], contiguous, on the CPU
  torch::Tensor k_;          // int8 [B, Hkv, capacity / 16, D, 16]
  torch::Tensor v_;          // int8 [B, Hkv, capacity, D]
  torch::Tensor k_s_, v_s_;  // dynamic: float32 [B, Hkv, capacity]
  int64_t length_ = 0;
};

// An Int8KVCacheFormat (so checkpoints and reports see the same scheme and scales) whose caches are
// CpuInt8KVCache on the CPU; on another device it makes the reference Int8KVCache and logs why, once.
class CpuInt8KVCacheFormat : public Int8KVCacheFormat {
 public:
  explicit CpuInt8KVCacheFormat(KVQuantParams params) : Int8KVCacheFormat(std::move(params)) {}
  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const override;
};

}  // namespace ptq::cpu
