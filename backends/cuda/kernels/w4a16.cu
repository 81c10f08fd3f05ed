// W4A16 decode kernel (M <= 16) and the dequantizer of the prefill path. Layout: cuda_kernels.h.
//
// Why this shape: at M <= 16 a Linear is a stream over the weight, so the kernel must read the 4-bit
// weight once at full bandwidth and keep the tensor cores, not the FMA pipes, on the arithmetic. The
// weight plays the A operand of mma.m16n8k16 (16 output features x 16 in-features) and the activations the
// B operand (16 in-features x 8 tokens): one or two n8 tiles cover M <= 16. The repacked word of a lane is
// its A fragment, so unpacking is four mask-and-or's (the fp16/bf16 exponent trick: 0x6400 | q is the half
// 1024 + q, 0x4300 | q the bfloat16 128 + q) and one packed subtraction of (1024 + 8 + z) per register,
// which yields the exact small integers q - z. The scale is applied in float32 to each tile's mma result,
// so the only roundings are fp32 accumulation (the reference rounds w to 16 bits first; we are closer to
// exact, within the kernel tolerance of tests/cuda).
//
// Work split: a block owns RT row tiles (16 features each) and all of K; its 8 warps take interleaved
// 64-column quads, U quads per iteration with all loads issued first (enough bytes in flight to cover
// DRAM latency), then reduce through shared memory. RT = 2 when M > 8 halves how often activations are
// re-read from L2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/kernels/cuda_kernels.h"

namespace ptq::cuda {
namespace {

constexpr int kWarps = 8;

template <typename T>
struct Int4Magic;
template <>
struct Int4Magic<__half> {
  static constexpr uint32_t kOr = 0x64006400u;  // fp16 1024.0 in both halves
  static constexpr uint32_t kBase = 0x6400u + 8u;  // bits of 1024 + 8 (the unsigned code offset)
};
template <>
struct Int4Magic<__nv_bfloat16> {
  static constexpr uint32_t kOr = 0x43004300u;     // bf16 128.0 in both halves
  static constexpr uint32_t kBase = 0x4300u + 8u;  // 128 + 8: the ulp at 128 is 1, so + 8 + z stays exact
};

template <typename T>
__device__ __forceinline__ uint32_t sub_pair(uint32_t a, uint32_t b);
template <>
__device__ __forceinline__ uint32_t sub_pair<__half>(uint32_t a, uint32_t b) {
  __half2 r = __hsub2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}
template <>
__device__ __forceinline__ uint32_t sub_pair<__nv_bfloat16>(uint32_t a, uint32_t b) {
  __nv_bfloat162 r = __hsub2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}

// (base + z) in both halves: the value subtracted from (base + code) to leave q - z.
template <typename T>
__device__ __forceinline__ uint32_t zero_pair(int z) {
  const uint32_t h = Int4Magic<T>::kBase + static_cast<uint32_t>(z);  // z in [-8, 7]
  return h | (h << 16);
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(0.f), "f"(0.f), "f"(0.f), "f"(0.f));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                        const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(0.f), "f"(0.f), "f"(0.f), "f"(0.f));
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }

// Group of in-feature k: group_size 0 means one group per row.
__device__ __forceinline__ int group_of(int k, int group_size) { return group_size > 0 ? k / group_size : 0; }

// GPQ: groups per 64-column quad (1 when the group size is a multiple of 64 or per-channel, 2 for
// multiples of 32, 4 for multiples of 16), so scales are loaded once per group, not per k-tile.
template <typename T, int NT, int RT, int U, int GPQ>
__global__ void __launch_bounds__(kWarps * 32)
    w4a16_decode_kernel(const T* __restrict__ x, const uint4* __restrict__ wq, const float* __restrict__ scales,
                        const int8_t* __restrict__ zeros, const float* __restrict__ bias, T* __restrict__ y, int M,
                        int N, int K, int group_size) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = lane / 4, cq = lane % 4;
  const int n_quads = (K + 63) / 64;
  const int n_row_tiles = (N + 15) / 16;
  const int n_pad = n_row_tiles * 16;
  const int n_groups = group_size > 0 ? (K + group_size - 1) / group_size : 1;
  const int rt0 = blockIdx.x * RT;

  float acc[RT][NT][4];
#pragma unroll
  for (int i = 0; i < RT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  for (int q0 = warp; q0 < n_quads; q0 += kWarps * U) {
    // Load phase: every load of the U quads is issued before any arithmetic and nothing in it branches on
    // data, so DRAM (weights) and L2 (activations, scales) latencies overlap instead of adding up. Out of
    // range quads read clamped addresses and are neutralised by zero activations.
    uint4 w[U][RT];
    uint32_t b[U][4][NT][2];
    float s[U][RT][GPQ][2];
    uint32_t z[U][RT][GPQ][2];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int q = q0 + u * kWarps;
      const bool q_ok = q < n_quads;
      const int qc = q_ok ? q : n_quads - 1;
#pragma unroll
      for (int t = 0; t < RT; ++t) {
        const int rt = min(rt0 + t, n_row_tiles - 1);
        // Streaming load: each weight byte is used once; keep L1/L2 for the activations.
        w[u][t] = q_ok && rt0 + t < n_row_tiles ? __ldcs(wq + (static_cast<size_t>(rt) * n_quads + qc) * 32 + lane)
                                                : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int gq = 0; gq < GPQ; ++gq) {
          const int g = min(group_of(qc * 64 + gq * (64 / GPQ), group_size), n_groups - 1);
          const size_t gi = static_cast<size_t>(g) * n_pad + rt * 16 + r;
          s[u][t][gq][0] = __ldg(scales + gi);
          s[u][t][gq][1] = __ldg(scales + gi + 8);
          z[u][t][gq][0] = zero_pair<T>(__ldg(zeros + gi));
          z[u][t][gq][1] = zero_pair<T>(__ldg(zeros + gi + 8));
        }
      }
      // B fragments: tokens nt * 8 + r, in-features k0 + 2 cq (+1) and +8; rows past M and columns past K
      // read as zero (K % 8 == 0, so a pair is either wholly inside or wholly outside).
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int k0 = qc * 64 + j * 16;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const int tok = nt * 8 + r;
          const bool row_ok = q_ok && tok < M;
          const T* xr = x + static_cast<size_t>(row_ok ? tok : 0) * K + k0 + 2 * cq;
          b[u][j][nt][0] = row_ok && k0 + 2 * cq < K ? __ldg(reinterpret_cast<const uint32_t*>(xr)) : 0u;
          b[u][j][nt][1] = row_ok && k0 + 8 + 2 * cq < K ? __ldg(reinterpret_cast<const uint32_t*>(xr + 8)) : 0u;
        }
      }
    }
    // Compute phase: unpack (exact q - z in 16 bits), tensor-core product, float32 scale.
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int gq = j * GPQ / 4;
#pragma unroll
        for (int t = 0; t < RT; ++t) {
          const uint32_t word = j == 0 ? w[u][t].x : j == 1 ? w[u][t].y : j == 2 ? w[u][t].z : w[u][t].w;
          const uint32_t z_lo = z[u][t][gq][0], z_hi = z[u][t][gq][1];
          uint32_t a[4];
          a[0] = sub_pair<T>((word & 0x000F000Fu) | Int4Magic<T>::kOr, z_lo);
          a[1] = sub_pair<T>(((word >> 4) & 0x000F000Fu) | Int4Magic<T>::kOr, z_hi);
          a[2] = sub_pair<T>(((word >> 8) & 0x000F000Fu) | Int4Magic<T>::kOr, z_lo);
          a[3] = sub_pair<T>(((word >> 12) & 0x000F000Fu) | Int4Magic<T>::kOr, z_hi);
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            float d[4];
            mma16816<T>(d, a, b[u][j][nt]);
            acc[t][nt][0] += d[0] * s[u][t][gq][0];
            acc[t][nt][1] += d[1] * s[u][t][gq][0];
            acc[t][nt][2] += d[2] * s[u][t][gq][1];
            acc[t][nt][3] += d[3] * s[u][t][gq][1];
          }
        }
      }
    }
  }

  // Sum the warps' partial results (each warp saw a different part of K).
  constexpr int kVals = RT * NT * 4;
  __shared__ float partial[kWarps][kVals][32];
#pragma unroll
  for (int t = 0; t < RT; ++t)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) partial[warp][(t * NT + nt) * 4 + e][lane] = acc[t][nt][e];
  __syncthreads();
  for (int idx = threadIdx.x; idx < kVals * 32; idx += kWarps * 32) {
    const int v = idx / 32, l = idx % 32;
    float sum = 0.f;
#pragma unroll
    for (int wi = 0; wi < kWarps; ++wi) sum += partial[wi][v][l];
    const int e = v % 4, nt = (v / 4) % NT, t = v / (4 * NT);
    // C fragment: feature row l / 4 (+ 8 for e >= 2), token column 2 (l % 4) + (e & 1).
    const int n = (rt0 + t) * 16 + l / 4 + (e >= 2 ? 8 : 0);
    const int m = nt * 8 + 2 * (l % 4) + (e & 1);
    if (n < N && m < M) {
      if (bias != nullptr) sum += bias[n];
      y[static_cast<size_t>(m) * N + n] = from_float<T>(sum);
    }
  }
}

template <typename T, int NT, int RT, int U, int GPQ>
cudaError_t launch_decode(const void* x, const uint32_t* wq, const float* scales, const int8_t* zeros,
                          const float* bias, void* y, int M, int N, int K, int group_size, cudaStream_t stream) {
  const int n_row_tiles = (N + 15) / 16;
  const dim3 grid((n_row_tiles + RT - 1) / RT);
  w4a16_decode_kernel<T, NT, RT, U, GPQ><<<grid, kWarps * 32, 0, stream>>>(
      static_cast<const T*>(x), reinterpret_cast<const uint4*>(wq), scales, zeros, bias, static_cast<T*>(y), M, N, K,
      group_size);
  return cudaGetLastError();
}

template <typename T, int GPQ>
cudaError_t dispatch_rows(const void* x, const uint32_t* wq, const float* scales, const int8_t* zeros,
                          const float* bias, void* y, int M, int N, int K, int group_size, cudaStream_t stream) {
  if (M <= 8) return launch_decode<T, 1, 1, 4, GPQ>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  return launch_decode<T, 2, 2, 2, GPQ>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

template <typename T>
cudaError_t dispatch_decode(const void* x, const uint32_t* wq, const float* scales, const int8_t* zeros,
                            const float* bias, void* y, int M, int N, int K, int group_size, cudaStream_t stream) {
  if (group_size == 0 || group_size % 64 == 0) {
    return dispatch_rows<T, 1>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  if (group_size % 32 == 0) return dispatch_rows<T, 2>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  return dispatch_rows<T, 4>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

// One warp per (row tile, quad): the 32 lanes' 128 words are 16 rows x 64 columns; they are dequantized
// into shared memory and written out as 16 contiguous row segments (coalesced), not as scattered pairs.
template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    w4a16_dequantize_kernel(const uint32_t* __restrict__ wq, const float* __restrict__ scales,
                            const int8_t* __restrict__ zeros, T* __restrict__ w, int N, int K, int group_size) {
  __shared__ float tile[kWarps][16][65];  // +1 column: no bank conflicts on the transposed writes
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = lane / 4, cq = lane % 4;
  const int n_quads = (K + 63) / 64;
  const int n_row_tiles = (N + 15) / 16;
  const int n_pad = n_row_tiles * 16;
  const int n_groups = group_size > 0 ? (K + group_size - 1) / group_size : 1;
  const size_t n_tiles = static_cast<size_t>(n_row_tiles) * n_quads;
  for (size_t tix = static_cast<size_t>(blockIdx.x) * kWarps + warp; tix < n_tiles;
       tix += static_cast<size_t>(gridDim.x) * kWarps) {
    const int q = tix % n_quads, rt = tix / n_quads;
    const uint4 words = reinterpret_cast<const uint4*>(wq)[tix * 32 + lane];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t word = j == 0 ? words.x : j == 1 ? words.y : j == 2 ? words.z : words.w;
#pragma unroll
      for (int nib = 0; nib < 8; ++nib) {
        // nibble index = p * 4 + c8 * 2 + h: p the column within the pair, c8 the +8 column half, h the +8 row.
        const int h = nib & 1, c8 = (nib >> 1) & 1, p = nib >> 2;
        const int row = r + 8 * h, col = j * 16 + 8 * c8 + 2 * cq + p;
        const int g = min(group_of(q * 64 + col, group_size), n_groups - 1);
        const size_t gi = static_cast<size_t>(g) * n_pad + rt * 16 + row;
        const int code = static_cast<int>((word >> (4 * nib)) & 0xF) - 8;
        tile[warp][row][col] = static_cast<float>(code - zeros[gi]) * scales[gi];
      }
    }
    __syncwarp();
    for (int i = lane; i < 16 * 64; i += 32) {
      const int row = i / 64, col = i % 64;
      const int n = rt * 16 + row, k = q * 64 + col;
      if (n < N && k < K) w[static_cast<size_t>(n) * K + k] = from_float<T>(tile[warp][row][col]);
    }
    __syncwarp();
  }
}

}  // namespace

cudaError_t launch_w4a16_decode(const void* x, int dtype, const uint32_t* wq, const float* scales,
                                const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                                cudaStream_t stream) {
  if (M < 1 || M > 16 || K % 8 != 0 || (group_size != 0 && group_size % 16 != 0)) return cudaErrorInvalidValue;
  if (dtype == kF16) return dispatch_decode<__half>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  if (dtype == kBF16) {
    return dispatch_decode<__nv_bfloat16>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_w4a16_dequantize(const uint32_t* wq, const float* scales, const int8_t* zeros, void* w, int dtype,
                                    int N, int K, int group_size, cudaStream_t stream) {
  const int threads = kWarps * 32;
  const size_t tiles = static_cast<size_t>((N + 15) / 16) * ((K + 63) / 64);
  const int blocks = static_cast<int>(std::min<size_t>((tiles + kWarps - 1) / kWarps, 132 * 8));
  if (dtype == kF16) {
    w4a16_dequantize_kernel<__half>
        <<<blocks, threads, 0, stream>>>(wq, scales, zeros, static_cast<__half*>(w), N, K, group_size);
  } else if (dtype == kBF16) {
    w4a16_dequantize_kernel<__nv_bfloat16>
        <<<blocks, threads, 0, stream>>>(wq, scales, zeros, static_cast<__nv_bfloat16*>(w), N, K, group_size);
  } else if (dtype == kF32) {
    w4a16_dequantize_kernel<float>
        <<<blocks, threads, 0, stream>>>(wq, scales, zeros, static_cast<float*>(w), N, K, group_size);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace ptq::cuda
