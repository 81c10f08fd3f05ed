// Int8 KV-cache decode attention, split-K (flash-decoding): kv_attention.h has the storage, the formulas and
// the work split. This file: the partial kernel (one block = one KV head x one chunk of positions x up to
// 8 query rows) and the combine kernel.
//
// Inside a block (256 threads), for a chunk of at most kMaxChunk positions:
//   1. scores: LP = D / CH lanes share one position (each lane CH channels: one 16- or 8-byte load of
//      codes), multiply with the rows' pre-scaled queries held in registers, sum over the LP lanes with
//      shuffles; the scores of the chunk go to shared memory.
//   2. softmax partials: one warp per row applies the mask, takes the max m, writes p = exp(s - m)
//      (times the value's per-token scale in dynamic mode) back and sums l = sum p.
//   3. values: each lane accumulates p * code over its positions for its CH channels and every row, in
//      registers; warps are summed with shuffles, then shared-memory atomics; the block writes its
//      unnormalized partial out (times the per-channel value scale in static mode), m and l.
// Codes become floats without I2F (a quarter-rate instruction): (code ^ 0x80) is code + 128 as a byte;
// placed under the exponent of 2^23 it is the float 2^23 + code + 128, and one subtraction leaves the
// exact integer code.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "backends/cuda/kernels/kv_attention.h"

namespace ptq::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxChunk = 512;  // positions per block: the scores of 8 rows fit in 16 KiB of shared memory
constexpr int kMinChunk = 64;   // below this the block's fixed cost (q, syncs, partial write) dominates
constexpr int kUnroll = 4;      // code loads in flight per lane before the arithmetic that uses them

__device__ __forceinline__ float load_elem(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case 0: return __half2float(static_cast<const __half*>(p)[i]);
    case 1: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_elem(void* p, int dtype, int64_t i, float v) {
  switch (dtype) {
    case 0: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case 1: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// Byte i (0..3) of a word of four biased codes (code + 128) as the float code (see the file comment).
__device__ __forceinline__ float code_to_float(uint32_t biased, int i) {
  const uint32_t bits = __byte_perm(biased, 0x4B000000u, 0x7540u | static_cast<uint32_t>(i));
  return __uint_as_float(bits) - 8388736.f;  // 2^23 + 128
}

// CH int8 codes (CH / 4 words) from global memory, read-only path.
template <int CH>
__device__ __forceinline__ void load_codes(const int8_t* p, uint32_t (&w)[CH / 4]) {
  if constexpr (CH == 16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else {
    static_assert(CH == 8, "CH is 8 or 16");
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  }
}

struct Tile {
  int b, kv, tile, split;
  int s0, len;  // first position and positions of this block's chunk
};

// Partials: o [bh][tile][R][split][D], then ml [bh][tile][R][split][2] (max, sum).
__device__ __forceinline__ int64_t partial_row(int bh, int tile, int r, int split, int row_tiles, int R, int splits) {
  return ((static_cast<int64_t>(bh) * row_tiles + tile) * R + r) * splits + split;
}

template <int D, int R, int CH>
__global__ void __launch_bounds__(kThreads, 2)
    kv_decode_partial_kernel(const KVDecodeArgs a, int chunk, int splits, int row_tiles, float* __restrict__ part_o,
                             float* __restrict__ part_ml) {
  constexpr int LP = D / CH;         // lanes per position
  constexpr int NG = kThreads / LP;  // positions per block step
  static_assert(LP >= 1 && LP <= 32 && (LP & (LP - 1)) == 0, "D / CH must be a power of two <= 32");
  __shared__ float scores[R][kMaxChunk];
  __shared__ float red[R][D];

  const int bh = blockIdx.y, b = bh / a.kv_heads, kv = bh % a.kv_heads;
  const int tile = blockIdx.z, split = blockIdx.x;
  const int G = a.heads / a.kv_heads, rows = G * a.tokens;
  const int s0 = split * chunk, len = min(chunk, a.length - s0);
  const int group = threadIdx.x / LP, c0 = (threadIdx.x % LP) * CH;
  const int8_t* kbase = a.k_codes + bh * a.bh_stride + c0;
  const int8_t* vbase = a.v_codes + bh * a.bh_stride + c0;

  // Queries of the tile's rows, pre-scaled: scale (and the static per-channel key scale) folded in.
  float q[R][CH];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int j = tile * R + r;
    if (j < rows) {
      const int t = j / G, h = kv * G + j % G;
      const int64_t base = ((static_cast<int64_t>(b) * a.heads + h) * a.tokens + t) * D + c0;
#pragma unroll
      for (int c = 0; c < CH; ++c) {
        float s = a.scale;
        if (a.k_channel_scale) s *= a.k_channel_scale[kv * D + c0 + c];
        q[r][c] = load_elem(a.q, a.dtype, base + c) * s;
      }
    } else {
#pragma unroll
      for (int c = 0; c < CH; ++c) q[r][c] = 0.f;  // padding row: computed, never written
    }
  }

  // 1. Scores.
  for (int step = 0; step < len; step += NG * kUnroll) {
    uint32_t w[kUnroll][CH / 4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int sl = step + u * NG + group;
      if (sl < len) {
        load_codes<CH>(kbase + static_cast<int64_t>(s0 + sl) * D, w[u]);
      } else {
#pragma unroll
        for (int i = 0; i < CH / 4; ++i) w[u][i] = 0;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float acc[R];
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] = 0.f;
#pragma unroll
      for (int i = 0; i < CH / 4; ++i) {
        const uint32_t biased = w[u][i] ^ 0x80808080u;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float f = code_to_float(biased, e);
#pragma unroll
          for (int r = 0; r < R; ++r) acc[r] = fmaf(q[r][4 * i + e], f, acc[r]);
        }
      }
#pragma unroll
      for (int off = LP / 2; off > 0; off /= 2) {
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
      }
      const int sl = step + u * NG + group;
      if (threadIdx.x % LP == 0 && sl < len) {
        const float ks = a.k_token_scale ? a.k_token_scale[bh * a.scale_bh_stride + s0 + sl] : 1.f;
#pragma unroll
        for (int r = 0; r < R; ++r) scores[r][sl] = acc[r] * ks;
      }
    }
  }
  for (int i = threadIdx.x; i < R * D; i += kThreads) (&red[0][0])[i] = 0.f;
  __syncthreads();

  // 2. Mask, max, exp, sum: one warp per row.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < R; r += kWarps) {
    const int j = tile * R + r;
    const uint8_t* mask = nullptr;
    if (a.allowed && j < rows) mask = a.allowed + (static_cast<int64_t>(b) * a.tokens + j / G) * a.length + s0;
    float m = -FLT_MAX;
    for (int sl = lane; sl < len; sl += 32) {
      float s = scores[r][sl];
      if (mask && !mask[sl]) s = -FLT_MAX;
      scores[r][sl] = s;
      m = fmaxf(m, s);
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float l = 0.f;
    for (int sl = lane; sl < len; sl += 32) {
      const float p = expf(scores[r][sl] - m);
      l += p;
      scores[r][sl] = a.v_token_scale ? p * a.v_token_scale[bh * a.scale_bh_stride + s0 + sl] : p;
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) l += __shfl_xor_sync(0xffffffffu, l, off);
    if (lane == 0) {
      float* ml = part_ml + 2 * partial_row(bh, tile, r, split, row_tiles, R, splits);
      ml[0] = m;
      ml[1] = l;
    }
  }
  __syncthreads();

  // 3. Weighted values.
  float acc[R][CH];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int c = 0; c < CH; ++c) acc[r][c] = 0.f;
  }
  for (int step = 0; step < len; step += NG * kUnroll) {
    uint32_t w[kUnroll][CH / 4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int sl = step + u * NG + group;
      if (sl < len) load_codes<CH>(vbase + static_cast<int64_t>(s0 + sl) * D, w[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int sl = step + u * NG + group;
      if (sl < len) {
        float p[R];
#pragma unroll
        for (int r = 0; r < R; ++r) p[r] = scores[r][sl];
#pragma unroll
        for (int i = 0; i < CH / 4; ++i) {
          const uint32_t biased = w[u][i] ^ 0x80808080u;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float f = code_to_float(biased, e);
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r][4 * i + e] = fmaf(p[r], f, acc[r][4 * i + e]);
          }
        }
      }
    }
  }
  // Sum the position groups of a warp (lanes that differ above the LP bits), then the warps.
#pragma unroll
  for (int off = LP; off < 32; off *= 2) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int c = 0; c < CH; ++c) acc[r][c] += __shfl_xor_sync(0xffffffffu, acc[r][c], off);
    }
  }
  if (lane < LP) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int c = 0; c < CH; ++c) atomicAdd(&red[r][c0 + c], acc[r][c]);
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < R * D; i += kThreads) {
    const int r = i / D, d = i % D;
    const float vs = a.v_channel_scale ? a.v_channel_scale[kv * D + d] : 1.f;
    part_o[partial_row(bh, tile, r, split, row_tiles, R, splits) * D + d] = red[r][d] * vs;
  }
}

// One block per real query row, one thread per channel: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
__global__ void kv_decode_combine_kernel(const KVDecodeArgs a, int R, int splits, int row_tiles,
                                         const float* __restrict__ part_o, const float* __restrict__ part_ml) {
  const int D = a.head_dim;
  const int G = a.heads / a.kv_heads, rows = G * a.tokens;
  int idx = blockIdx.x;
  const int r = idx % R;
  idx /= R;
  const int tile = idx % row_tiles;
  const int bh = idx / row_tiles, b = bh / a.kv_heads, kv = bh % a.kv_heads;
  const int j = tile * R + r;
  if (j >= rows) return;
  const int64_t first = partial_row(bh, tile, r, 0, row_tiles, R, splits);
  float M = -FLT_MAX;
  for (int i = 0; i < splits; ++i) M = fmaxf(M, part_ml[2 * (first + i)]);
  const int t = j / G, h = kv * G + j % G;
  const int64_t out = ((static_cast<int64_t>(b) * a.heads + h) * a.tokens + t) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float num = 0.f, den = 0.f;
    for (int i = 0; i < splits; ++i) {
      const float w = expf(part_ml[2 * (first + i)] - M);
      den = fmaf(w, part_ml[2 * (first + i) + 1], den);
      num = fmaf(w, part_o[(first + i) * D + d], num);
    }
    store_elem(a.out, a.dtype, out + d, num / den);
  }
}

template <int D, int R>
cudaError_t launch_partial(const KVDecodeArgs& a, const KVDecodePlan& p, float* part_o, float* part_ml,
                           cudaStream_t stream) {
  constexpr int CH = R <= 4 ? 16 : 8;  // registers: q and the value accumulators are 2 * R * CH floats
  const dim3 grid(p.splits, a.batch * a.kv_heads, p.row_tiles);
  kv_decode_partial_kernel<D, R, CH><<<grid, kThreads, 0, stream>>>(a, p.chunk, p.splits, p.row_tiles, part_o,
                                                                     part_ml);
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_partial_rows(const KVDecodeArgs& a, const KVDecodePlan& p, float* part_o, float* part_ml,
                                cudaStream_t stream) {
  switch (p.rows_per_tile) {
    case 1: return launch_partial<D, 1>(a, p, part_o, part_ml, stream);
    case 2: return launch_partial<D, 2>(a, p, part_o, part_ml, stream);
    case 4: return launch_partial<D, 4>(a, p, part_o, part_ml, stream);
    case 8: return launch_partial<D, 8>(a, p, part_o, part_ml, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool kv_decode_supports_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128; }

KVDecodePlan kv_decode_plan(const KVDecodeArgs& a, int sm_count, int splits_override) {
  KVDecodePlan p;
  const int rows = (a.heads / std::max(a.kv_heads, 1)) * a.tokens;
  while (p.rows_per_tile < 8 && p.rows_per_tile < rows) p.rows_per_tile *= 2;
  p.row_tiles = std::max(1, (rows + p.rows_per_tile - 1) / p.rows_per_tile);
  const int S = std::max(a.length, 1);
  int want = splits_override;
  if (want <= 0) {
    // About four blocks per SM in all (two resident at a time): enough bytes in flight to stream HBM.
    const int64_t heads = static_cast<int64_t>(a.batch) * a.kv_heads * p.row_tiles;
    want = static_cast<int>(std::max<int64_t>(1, (4 * static_cast<int64_t>(sm_count) + heads - 1) / heads));
  }
  int chunk = (S + want - 1) / want;
  chunk = (chunk + 31) / 32 * 32;
  if (splits_override <= 0) chunk = std::max(chunk, kMinChunk);
  p.chunk = std::min(chunk, kMaxChunk);
  p.splits = (S + p.chunk - 1) / p.chunk;
  p.workspace_floats = static_cast<int64_t>(a.batch) * a.kv_heads * p.row_tiles * p.rows_per_tile * p.splits *
                       (a.head_dim + 2);
  return p;
}

cudaError_t launch_kv_decode_attention(const KVDecodeArgs& a, const KVDecodePlan& p, float* workspace,
                                       cudaStream_t stream) {
  if (!kv_decode_supports_head_dim(a.head_dim) || a.kv_heads <= 0 || a.heads % a.kv_heads != 0 || a.length <= 0 ||
      a.tokens <= 0 || a.dtype < 0 || a.dtype > 2)
    return cudaErrorInvalidValue;
  float* part_o = workspace;
  float* part_ml = workspace + static_cast<int64_t>(a.batch) * a.kv_heads * p.row_tiles * p.rows_per_tile *
                                   p.splits * a.head_dim;
  const cudaError_t e = a.head_dim == 64 ? launch_partial_rows<64>(a, p, part_o, part_ml, stream)
                                         : launch_partial_rows<128>(a, p, part_o, part_ml, stream);
  if (e != cudaSuccess) return e;
  const int blocks = a.batch * a.kv_heads * p.row_tiles * p.rows_per_tile;
  kv_decode_combine_kernel<<<blocks, a.head_dim, 0, stream>>>(a, p.rows_per_tile, p.splits, p.row_tiles, part_o,
                                                              part_ml);
  return cudaGetLastError();
}

}  // namespace ptq::cuda
