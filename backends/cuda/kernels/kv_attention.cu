// Int8 KV-cache decode attention, split-K (flash-decoding): kv_attention.h has the storage, the formulas and
// the work split. This file: the partial kernel (one block = one KV head x one tile of kTilePositions(D)
// positions x up to 8 query rows) and the combine kernel.
//
// A block (256 threads) first issues every load it will need -- its tile's key AND value codes (64 bytes
// of each per lane, 32 KiB per block), the per-token scales, the mask bytes -- and only then computes, so
// two resident blocks keep ~64 KiB per SM in flight (what streaming HBM needs; the first version looped
// over 512-position chunks with 16 KiB in flight and reached 0.3-1.7 TB/s). Then:
//   1. scores: LP = D / CH lanes share one position (each lane CH channels), multiply with the rows'
//      pre-scaled queries held in registers, sum over the LP lanes with shuffles; scores to shared memory.
//   2. softmax partials: one warp per row applies the mask, takes the max m, writes p = exp(s - m)
//      (times the value's per-token scale in dynamic mode) back and sums l = sum p.
//   3. values: each lane accumulates p * code for its positions and CH channels, every row, in registers
//      (the value codes arrived long ago); position groups are summed with shuffles, then each warp stores
//      its sums to its own shared-memory slice and the 8 slices are added in a fixed order (no atomics: a
//      float atomicAdd on shared memory is a compare-and-swap loop, and 8 warps adding R x D values to the
//      same addresses retried it enough to be the likely cause of the measured ~10-20 us block lifetimes;
//      the fixed order also makes the result deterministic); the block writes its unnormalized partial
//      (times the per-channel value scale in static mode), m and l.
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
constexpr int kLaneBytes = 64;  // key bytes (and value bytes) each lane loads per block

// Positions per block: 256 lanes x 64 bytes / D bytes per position (128 at D = 128, 256 at D = 64).
__host__ __device__ constexpr int tile_positions(int D) { return kThreads * kLaneBytes / D; }

__device__ __forceinline__ void store_elem(void* p, int dtype, int64_t i, float v) {
  switch (dtype) {
    case 0: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case 1: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// CH consecutive elements of q (dtype) as floats; 16-byte loads (the glue checks q's alignment, and
// offsets are multiples of 8 elements).
template <int CH>
__device__ __forceinline__ void load_q(const void* q, int dtype, int64_t offset, float (&out)[CH]) {
  if (dtype == 2) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(q) + offset);
#pragma unroll
    for (int i = 0; i < CH / 4; ++i) {
      const float4 v = p[i];
      out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
    return;
  }
  const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(q) + offset);
#pragma unroll
  for (int i = 0; i < CH / 8; ++i) {
    const uint4 v = p[i];
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 f;
      if (dtype == 0) {
        f = __half22float2(*reinterpret_cast<const __half2*>(&w[j]));
      } else {
        f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[j]));
      }
      out[8 * i + 2 * j] = f.x, out[8 * i + 2 * j + 1] = f.y;
    }
  }
}

// Byte i (0..3) of a word of four biased codes (code + 128) as the float code (see the file comment).
__device__ __forceinline__ float code_to_float(uint32_t biased, int i) {
  const uint32_t bits = __byte_perm(biased, 0x4B000000u, 0x7540u | static_cast<uint32_t>(i));
  return __uint_as_float(bits) - 8388736.f;  // 2^23 + 128
}

// Calls use(c, code) for c = 0 .. CH - 1, with the c-th of the CH codes held in CH / 4 words (load_codes)
// as an exact float: the one walk over a lane's codes of the score and the value phases.
template <int CH, class Use>
__device__ __forceinline__ void for_each_code(const uint32_t (&w)[CH / 4], Use&& use) {
#pragma unroll
  for (int i = 0; i < CH / 4; ++i) {
    const uint32_t biased = w[i] ^ 0x80808080u;
#pragma unroll
    for (int e = 0; e < 4; ++e) use(4 * i + e, code_to_float(biased, e));
  }
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

// Partials: o [bh][tile][R][split][D], then ml [bh][tile][R][split][2] (max, sum).
__device__ __forceinline__ int64_t partial_row(int bh, int tile, int r, int split, int row_tiles, int R, int splits) {
  return ((static_cast<int64_t>(bh) * row_tiles + tile) * R + r) * splits + split;
}

template <int D, int R, int CH>
__global__ void __launch_bounds__(kThreads, 2)
    kv_decode_partial_kernel(const KVDecodeArgs a, int splits, int row_tiles, float* __restrict__ part_o,
                             float* __restrict__ part_ml) {
  constexpr int LP = D / CH;                // lanes per position
  constexpr int NG = kThreads / LP;         // positions per block step
  constexpr int U = kLaneBytes / CH;        // positions per lane
  constexpr int TILE = NG * U;              // positions per block
  static_assert(TILE == tile_positions(D), "tile size");
  static_assert(LP >= 1 && LP <= 32 && (LP & (LP - 1)) == 0, "D / CH must be a power of two <= 32");
  __shared__ float scores[R][TILE];
  __shared__ float red[kWarps][R][D];  // phase 3: one slice per warp (32 KiB at R = 8, D = 128)
  __shared__ float vscale[TILE];
  __shared__ uint8_t allowed[R][TILE];

  const int bh = blockIdx.y, b = bh / a.kv_heads, kv = bh % a.kv_heads;
  const int tile = blockIdx.z, split = blockIdx.x;
  const int G = a.heads / a.kv_heads, rows = G * a.tokens;
  const int s0 = split * TILE, len = min(TILE, a.length - s0);
  const int group = threadIdx.x / LP, c0 = (threadIdx.x % LP) * CH;
  const bool writer = threadIdx.x % LP == 0;

  // 0. Every load first: key and value codes of this lane's U positions, then their per-token scales.
  uint32_t kw[U][CH / 4], vw[U][CH / 4];
  {
    const int8_t* kbase = a.k_codes + bh * a.bh_stride + static_cast<int64_t>(s0) * D + c0;
    const int8_t* vbase = a.v_codes + bh * a.bh_stride + static_cast<int64_t>(s0) * D + c0;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int sl = u * NG + group;
      if (sl < len) {
        load_codes<CH>(kbase + sl * D, kw[u]);
        load_codes<CH>(vbase + sl * D, vw[u]);
      } else {
#pragma unroll
        for (int i = 0; i < CH / 4; ++i) kw[u][i] = vw[u][i] = 0;  // code 0 (p is 0 there too)
      }
    }
  }
  float ks[U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int sl = u * NG + group;
    ks[u] = 1.f;
    if (a.k_token_scale && writer && sl < len) {
      ks[u] = __ldg(a.k_token_scale + bh * a.scale_bh_stride + s0 + sl);
      vscale[sl] = __ldg(a.v_token_scale + bh * a.scale_bh_stride + s0 + sl);
    }
  }
  // The mask bytes of the rows' tokens (rows of one token share them; decode has one token).
  for (int i = threadIdx.x; i < R * TILE; i += kThreads) {
    const int r = i / TILE, sl = i % TILE, j = tile * R + r;
    uint8_t ok = 1;
    if (a.allowed && j < rows && sl < len) ok = a.allowed[(static_cast<int64_t>(b) * a.tokens + j / G) * a.length + s0 + sl];
    allowed[r][sl] = ok;
  }

  // Queries of the tile's rows, pre-scaled: scale (and the static per-channel key scale) folded in.
  float q[R][CH];
  float kc[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) kc[c] = a.scale;
  if (a.k_channel_scale) {
    const float4* p = reinterpret_cast<const float4*>(a.k_channel_scale + kv * D + c0);
#pragma unroll
    for (int i = 0; i < CH / 4; ++i) {
      const float4 v = __ldg(p + i);
      kc[4 * i] *= v.x, kc[4 * i + 1] *= v.y, kc[4 * i + 2] *= v.z, kc[4 * i + 3] *= v.w;
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int j = tile * R + r;
    if (j < rows) {
      const int t = j / G, h = kv * G + j % G;
      load_q<CH>(a.q, a.dtype, ((static_cast<int64_t>(b) * a.heads + h) * a.tokens + t) * D + c0, q[r]);
#pragma unroll
      for (int c = 0; c < CH; ++c) q[r][c] *= kc[c];
    } else {
#pragma unroll
      for (int c = 0; c < CH; ++c) q[r][c] = 0.f;  // padding row: computed, never written
    }
  }
  __syncthreads();  // allowed[] and vscale[] are written

  // 1. Scores.
#pragma unroll
  for (int u = 0; u < U; ++u) {
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.f;
    for_each_code<CH>(kw[u], [&](int c, float f) {
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] = fmaf(q[r][c], f, acc[r]);
    });
#pragma unroll
    for (int off = LP / 2; off > 0; off /= 2) {
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    }
    const int sl = u * NG + group;
    if (writer && sl < len) {
#pragma unroll
      for (int r = 0; r < R; ++r) scores[r][sl] = allowed[r][sl] ? acc[r] * ks[u] : -FLT_MAX;
    }
  }
  __syncthreads();

  // 2. Max, exp, sum: one warp per row.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < R; r += kWarps) {
    float m = -FLT_MAX;
    for (int sl = lane; sl < len; sl += 32) m = fmaxf(m, scores[r][sl]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float l = 0.f;
    for (int sl = lane; sl < len; sl += 32) {
      const float p = expf(scores[r][sl] - m);
      l += p;
      scores[r][sl] = a.v_token_scale ? p * vscale[sl] : p;
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

  // 3. Weighted values (positions past the end have p = 0 and zero codes).
  float acc[R][CH];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int c = 0; c < CH; ++c) acc[r][c] = 0.f;
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int sl = u * NG + group;
    float p[R];
#pragma unroll
    for (int r = 0; r < R; ++r) p[r] = sl < len ? scores[r][sl] : 0.f;
    for_each_code<CH>(vw[u], [&](int c, float f) {
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][c] = fmaf(p[r], f, acc[r][c]);
    });
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
      for (int c = 0; c < CH; ++c) red[warp][r][c0 + c] = acc[r][c];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < R * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float sum = red[0][r][d];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += red[w][r][d];
    const float vs = a.v_channel_scale ? a.v_channel_scale[kv * D + d] : 1.f;
    part_o[partial_row(bh, tile, r, split, row_tiles, R, splits) * D + d] = sum * vs;
  }
}

constexpr int kCombineThreads = 1024;

// Block-wide max or sum of one value per thread (kCombineThreads threads).
__device__ __forceinline__ float block_all(float v, bool is_max, float* buf) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = is_max ? fmaxf(v, o) : v + o;
  }
  __syncthreads();  // buf may still be read by the previous call
  if (threadIdx.x % 32 == 0) buf[threadIdx.x / 32] = v;
  __syncthreads();
  v = buf[0];
  for (int i = 1; i < kCombineThreads / 32; ++i) v = is_max ? fmaxf(v, buf[i]) : v + buf[i];
  return v;
}

// One block of 1024 threads per real query row: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
// The partials were written while the partial kernel streamed the cache through L2, so many come back from
// HBM; the weights e^(m_i - M) are computed once, in parallel, into shared memory, and thread (g, d) sums
// splits g, g + SG, ... of channel d (SG = 1024 / D groups, 8 loads in flight each), then the groups are
// added in shared memory. (Replacing a 128-thread block with 4 loads in flight took a 16K-position call
// from 147 to 136 us on the H200: the combine was not the main cost.)
__global__ void __launch_bounds__(kCombineThreads)
    kv_decode_combine_kernel(const KVDecodeArgs a, int R, int splits, int row_tiles, const float* __restrict__ part_o,
                             const float* __restrict__ part_ml) {
  extern __shared__ float weight[];  // splits floats
  __shared__ float buf[kCombineThreads / 32];
  __shared__ float sums[kCombineThreads];
  const int D = a.head_dim;
  const int G = a.heads / a.kv_heads, rows = G * a.tokens;
  int idx = blockIdx.x;
  const int r = idx % R;
  idx /= R;
  const int tile = idx % row_tiles;
  const int bh = idx / row_tiles, b = bh / a.kv_heads, kv = bh % a.kv_heads;
  const int j = tile * R + r;
  if (j >= rows) return;  // the whole block: no barrier is left half-reached
  const int64_t first = partial_row(bh, tile, r, 0, row_tiles, R, splits);
  const float2* ml = reinterpret_cast<const float2*>(part_ml) + first;
  float M = -FLT_MAX;
  for (int i = threadIdx.x; i < splits; i += kCombineThreads) M = fmaxf(M, ml[i].x);
  M = block_all(M, true, buf);
  float L = 0.f;
  for (int i = threadIdx.x; i < splits; i += kCombineThreads) {
    const float2 v = ml[i];
    const float w = expf(v.x - M);
    weight[i] = w;
    L = fmaf(w, v.y, L);
  }
  L = block_all(L, false, buf);  // its barriers also publish weight[]
  const int SG = kCombineThreads / D, g = threadIdx.x / D, d = threadIdx.x % D;
  const float* o = part_o + first * D + d;
  float num = 0.f;
#pragma unroll 8
  for (int i = g; i < splits; i += SG) num = fmaf(weight[i], o[static_cast<int64_t>(i) * D], num);
  sums[threadIdx.x] = num;
  __syncthreads();
  if (g == 0) {
    for (int k = 1; k < SG; ++k) num += sums[k * D + d];
    const int t = j / G, h = kv * G + j % G;
    store_elem(a.out, a.dtype, ((static_cast<int64_t>(b) * a.heads + h) * a.tokens + t) * D + d, num / L);
  }
}

template <int D, int R>
cudaError_t launch_partial(const KVDecodeArgs& a, const KVDecodePlan& p, float* part_o, float* part_ml,
                           cudaStream_t stream) {
  constexpr int CH = R <= 4 ? 16 : 8;  // registers: q and the value accumulators are R * CH floats each
  const dim3 grid(p.splits, a.batch * a.kv_heads, p.row_tiles);
  kv_decode_partial_kernel<D, R, CH><<<grid, kThreads, 0, stream>>>(a, p.splits, p.row_tiles, part_o, part_ml);
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

KVDecodePlan kv_decode_plan(const KVDecodeArgs& a) {
  KVDecodePlan p;
  const int rows = (a.heads / std::max(a.kv_heads, 1)) * a.tokens;
  while (p.rows_per_tile < 8 && p.rows_per_tile < rows) p.rows_per_tile *= 2;
  p.row_tiles = std::max(1, (rows + p.rows_per_tile - 1) / p.rows_per_tile);
  p.chunk = tile_positions(std::max(a.head_dim, 1));
  p.splits = std::max(1, (a.length + p.chunk - 1) / p.chunk);
  p.workspace_floats = static_cast<int64_t>(a.batch) * a.kv_heads * p.row_tiles * p.rows_per_tile * p.splits *
                       (a.head_dim + 2);
  return p;
}

cudaError_t launch_kv_decode_attention(const KVDecodeArgs& a, const KVDecodePlan& p, float* workspace,
                                       cudaStream_t stream) {
  if (!kv_decode_supports_head_dim(a.head_dim) || a.kv_heads <= 0 || a.heads % a.kv_heads != 0 || a.length <= 0 ||
      a.length > kKVDecodeMaxPositions || a.tokens <= 0 || a.dtype < 0 || a.dtype > 2)
    return cudaErrorInvalidValue;
  float* part_o = workspace;
  float* part_ml = workspace + static_cast<int64_t>(a.batch) * a.kv_heads * p.row_tiles * p.rows_per_tile *
                                   p.splits * a.head_dim;
  const cudaError_t e = a.head_dim == 64 ? launch_partial_rows<64>(a, p, part_o, part_ml, stream)
                                         : launch_partial_rows<128>(a, p, part_o, part_ml, stream);
  if (e != cudaSuccess) return e;
  const int blocks = a.batch * a.kv_heads * p.row_tiles * p.rows_per_tile;
  kv_decode_combine_kernel<<<blocks, kCombineThreads, p.splits * sizeof(float), stream>>>(
      a, p.rows_per_tile, p.splits, p.row_tiles, part_o, part_ml);
  return cudaGetLastError();
}

}  // namespace ptq::cuda
