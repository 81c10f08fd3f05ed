// The CUDA backend's int8 KV cache: the reference Int8KVCache's storage, unchanged (codes from quantize_kv,
// [B, Hkv, capacity, D] int8 plus per-token float32 scales in dynamic mode, so its codes equal the
// reference's byte for byte by construction), with an attend() that reads the int8 storage directly:
//   decode and short chunks (query rows per KV head G * T <= kCudaKVMaxKernelRows, head_dim 64 or 128, q
//       fp16 / bf16 / fp32): the split-K kernel of kernels/kv_attention.h (no dequantized copy is made);
//   prefill (more rows), other head dims: the reference path, Int8KVCache::attend: dequantize the whole cache
//       into a temporary of the compute dtype and run grouped_query_attention (torch matmul + softmax in
//       float32 on the GPU). Correct, and as fast as the reference, not faster.
// Differences from the reference on the kernel path: the order of float32 sums, the scales folded into q and
// p instead of into k and v, and keys/values kept in float32 where the reference rounds the dequantized
// cache to the compute dtype first (fp16/bf16 caches): tests/cuda/test_cuda_kv_attention.cc bounds them.
// This header is plain C++ (no CUDA types).
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "framework/backend.h"
#include "framework/kv_quant.h"

namespace ptq::cuda {

// More query rows per KV head than this go to the prefill path: the kernel re-reads the cache once per
// 8 rows, and the dequantize + matmul path is cheaper from there on.
inline constexpr int64_t kCudaKVMaxKernelRows = 64;

// Both int8 modes are supported whenever a CUDA device is visible; head_dim is checked per cache.
Support int8_kv_attention_supports(const KVQuantParams& params);

class CudaInt8KVCache : public Int8KVCache {
 public:
  CudaInt8KVCache(const KVCacheShape& shape, const KVQuantParams& params);
  // q [B, H, T, D] on the cache's device (H a multiple of Hkv), allowed bool [B, T, S] or undefined.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const override;
  std::string name() const override { return Int8KVCache::name() + "-cuda"; }
  // Whether attend(q) with these query rows per KV head takes the kernel (tests check both paths run).
  bool uses_kernel(int64_t rows_per_kv_head, torch::ScalarType dtype) const;
};

// An Int8KVCacheFormat (checkpoints and reports see the same scheme and scales) whose caches are
// CudaInt8KVCache on CUDA devices; on another device it makes the reference Int8KVCache and logs why, once.
class CudaInt8KVCacheFormat : public Int8KVCacheFormat {
 public:
  explicit CudaInt8KVCacheFormat(KVQuantParams params) : Int8KVCacheFormat(std::move(params)) {}
  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const override;
};

}  // namespace ptq::cuda
