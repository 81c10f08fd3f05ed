// Launcher of the int8 KV-cache decode attention (split-K / flash-decoding): plain device pointers and a
// cudaStream_t, no LibTorch (the .cu compiles with nvcc alone; backends/cuda/kv_cache_cuda.cc owns the
// tensors). Element types of q and out follow cuda_kernels.h (0 fp16, 1 bf16, 2 fp32).
//
// Storage read (framework/kv_quant.h's Int8KVCache, unchanged: the CUDA cache only adds a kernel):
//   key / value codes  int8, position p, channel d of (b, kv head h) at  codes[(b * Hkv + h) * bh_stride +
//                      p * D + d]  (bh_stride = capacity * D: the cache's buffers are [B, Hkv, capacity, D])
//   dynamic scales     float [B, Hkv, capacity]: scale of (b, h, p) at  s[(b * Hkv + h) * scale_bh_stride + p]
//   static scales      float [Hkv, D] contiguous
// What is computed, for query row (b, head, token t) against positions s < S (all float32):
//   score[s] = scale * sum_d q[d] * code_k[s, d] * k_scale      (k_scale per channel or per token)
//   score[s] = -FLT_MAX where allowed[b, t, s] is false (grouped_query_attention's finite fill: a fully
//              masked row then averages every position, as the reference does)
//   out = sum_s softmax(score)[s] * code_v[s, :] * v_scale, rounded once to the output dtype.
// Work split: grid (splits, B * Hkv, row tiles). Each block takes one KV head's chunk of positions and up to
// 8 query rows reading that head (the GQA heads of each token, token-major), reads each key and value code
// once for all its rows (more than 8 rows per KV head: once per 8), and writes an unnormalized partial
// (max, sum, weighted V); a second kernel combines the splits with the usual rescaling by exp(m_i - max m).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ptq::cuda {

struct KVDecodeArgs {
  // Query [B, H, T, D] contiguous (dtype), output likewise (out_dtype == dtype).
  const void* q = nullptr;
  void* out = nullptr;
  int dtype = 0;
  int batch = 0, heads = 0, kv_heads = 0, tokens = 0, head_dim = 0;
  int length = 0;  // S: stored positions
  const int8_t* k_codes = nullptr;
  const int8_t* v_codes = nullptr;
  int64_t bh_stride = 0;  // elements between consecutive (b, kv head) in the code buffers
  // Dynamic per-token scales (nullptr in static mode) and their (b, kv head) stride.
  const float* k_token_scale = nullptr;
  const float* v_token_scale = nullptr;
  int64_t scale_bh_stride = 0;
  // Static per-channel scales [Hkv, D] (nullptr in dynamic mode).
  const float* k_channel_scale = nullptr;
  const float* v_channel_scale = nullptr;
  const uint8_t* allowed = nullptr;  // bool bytes [B, T, S] or nullptr (every position allowed)
  float scale = 1.f;
};

// Whether the kernel handles this head dimension (64 and 128 today).
bool kv_decode_supports_head_dim(int head_dim);
// Longest cache the kernel takes (the combine kernel keeps one float per split in shared memory).
inline constexpr int kKVDecodeMaxPositions = 1 << 20;

// The work split of one call: one block per (KV head, row tile, chunk of `chunk` positions: 128 at D = 128,
// 256 at D = 64, 32 KiB of codes), and the float32 scratch (partials) the caller allocates.
struct KVDecodePlan {
  int splits = 1;
  int chunk = 0;
  int rows_per_tile = 1;  // 1, 2, 4 or 8
  int row_tiles = 1;
  int64_t workspace_floats = 0;
};
KVDecodePlan kv_decode_plan(const KVDecodeArgs& args);

// Runs both kernels. workspace: plan.workspace_floats float32, any contents.
cudaError_t launch_kv_decode_attention(const KVDecodeArgs& args, const KVDecodePlan& plan, float* workspace,
                                       cudaStream_t stream);

}  // namespace ptq::cuda
