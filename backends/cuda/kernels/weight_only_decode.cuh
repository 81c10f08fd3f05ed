// The row-tile decode kernel (M <= 16) and the dequantizer of the weight-only schemes, written once for any
// code width. A `Codes` policy (Int4Codes in w4a16.cu, Int8Codes in w8a16.cu) says how a lane's repacked
// bytes become its mma.m16n8k16 A fragments:
//   kVecs                     16-byte vectors per lane per 64-column quad (int4: 1, int8: 2); a quad of a
//                             row tile is kVecs * 512 contiguous bytes, vector v of lane l at v * 32 + l
//   kUnroll                   quads per warp step at M <= 8 (so that every width keeps 4 vectors per lane
//                             in flight: int4 4, int8 2)
//   zero_pair<T>(z)           what fragment() subtracts for zero point z (per row)
//   fragment<T>(w, j, zl, zh, a)  the four A registers of k-tile j (0..3) of the quad: exact q - z in T
//                             (zl for rows r, zh for rows r + 8)
// Everything else (loads, tensor-core product, fp32 scaling, reduction, dequantization) is this file.
//
// Why this shape: at M <= 16 a Linear is a stream over the weight, so the kernel must read the weight once
// at full bandwidth and keep the tensor cores, not the FMA pipes, on the arithmetic. The weight plays the A
// operand of mma.m16n8k16 (16 output features x 16 in-features) and the activations the B operand (16
// in-features x 8 tokens): one or two n8 tiles cover M <= 16. The scale is applied in float32 to each
// tile's product, so the only roundings are fp32 accumulation (the reference rounds w to 16 bits first;
// we are closer to exact, within the kernel tolerance of tests/cuda).
//
// Work split: a block owns RT row tiles (16 features each) and all of K; its 8 warps take interleaved
// 64-column quads, U quads per step with all loads issued first (enough bytes in flight to cover DRAM
// latency), then reduce through shared memory. RT = 2 when M > 8 halves how often activations are re-read
// from L2. At M > 8 the steps are software-pipelined by default (PIPE below).
#pragma once

#include <algorithm>

#include "backends/cuda/kernels/cuda_kernels.h"
#include "backends/cuda/kernels/mma_util.cuh"

namespace ptq::cuda {
namespace {

// The geometry of the row-tile layout of an N x K weight: 16-row tiles by 64-column quads, the last of each
// maybe partial; scales and zero points are [n_groups][n_pad] (rows padded to whole tiles).
struct TileGeometry {
  int n_quads;      // 64-column quads along K
  int n_row_tiles;  // 16-row tiles along N
  int n_pad;        // n_row_tiles * 16: the row stride of scales and zero points
  int n_groups;     // groups along K (1 for per-channel, group_size 0)
  __host__ __device__ TileGeometry(int N, int K, int group_size)
      : n_quads((K + 63) / 64),
        n_row_tiles((N + 15) / 16),
        n_pad(n_row_tiles * 16),
        n_groups(group_size > 0 ? (K + group_size - 1) / group_size : 1) {}
};

// GPQ: groups per 64-column quad (1 when the group size is a multiple of 64 or per-channel, 2 for
// multiples of 32, 4 for multiples of 16), so scales are loaded once per group, not per k-tile.
// One step of a warp: U quads' weights, activations, scales and zero points, held in registers.
template <class Codes, int NT, int RT, int U, int GPQ>
struct DecodeStep {
  uint4 w[U][RT][Codes::kVecs];
  uint32_t b[U][4][NT][2];
  float s[U][RT][GPQ][2];
  uint32_t z[U][RT][GPQ][2];
};

// Load phase: every load of the U quads q0, q0 + 8, ... is issued before any arithmetic and nothing in it
// branches on data, so DRAM (weights) and L2 (activations, scales) latencies overlap instead of adding up.
// Out of range quads read clamped addresses and are neutralised by zero weights and activations.
template <class Codes, typename T, int NT, int RT, int U, int GPQ>
__device__ __forceinline__ void decode_load(DecodeStep<Codes, NT, RT, U, GPQ>& st, int q0, const T* __restrict__ x,
                                            const uint4* __restrict__ wq, const float* __restrict__ scales,
                                            const int8_t* __restrict__ zeros, int M, int K, int group_size,
                                            const TileGeometry& geo, int rt0, int lane) {
  const int r = lane / 4, cq = lane % 4;
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int q = q0 + u * kWarps;
    const bool q_ok = q < geo.n_quads;
    const int qc = q_ok ? q : geo.n_quads - 1;
#pragma unroll
    for (int t = 0; t < RT; ++t) {
      const int rt = min(rt0 + t, geo.n_row_tiles - 1);
      const bool w_ok = q_ok && rt0 + t < geo.n_row_tiles;
      const uint4* src = wq + (static_cast<size_t>(rt) * geo.n_quads + qc) * Codes::kVecs * 32 + lane;
#pragma unroll
      for (int v = 0; v < Codes::kVecs; ++v) {
        // Streaming load: each weight byte is used once; keep L1/L2 for the activations.
        st.w[u][t][v] = w_ok ? __ldcs(src + v * 32) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int gq = 0; gq < GPQ; ++gq) {
        const int g = min(group_of(qc * 64 + gq * (64 / GPQ), group_size), geo.n_groups - 1);
        const size_t gi = static_cast<size_t>(g) * geo.n_pad + rt * 16 + r;
        st.s[u][t][gq][0] = __ldg(scales + gi);
        st.s[u][t][gq][1] = __ldg(scales + gi + 8);
        st.z[u][t][gq][0] = Codes::template zero_pair<T>(__ldg(zeros + gi));
        st.z[u][t][gq][1] = Codes::template zero_pair<T>(__ldg(zeros + gi + 8));
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
        st.b[u][j][nt][0] = row_ok && k0 + 2 * cq < K ? __ldg(reinterpret_cast<const uint32_t*>(xr)) : 0u;
        st.b[u][j][nt][1] = row_ok && k0 + 8 + 2 * cq < K ? __ldg(reinterpret_cast<const uint32_t*>(xr + 8)) : 0u;
      }
    }
  }
}

// Compute phase: unpack (exact q - z in 16 bits), tensor-core product, float32 scale.
template <class Codes, typename T, int NT, int RT, int U, int GPQ>
__device__ __forceinline__ void decode_compute(float (&acc)[RT][NT][4], const DecodeStep<Codes, NT, RT, U, GPQ>& st) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int gq = j * GPQ / 4;
#pragma unroll
      for (int t = 0; t < RT; ++t) {
        uint32_t a[4];
        Codes::template fragment<T>(st.w[u][t], j, st.z[u][t][gq][0], st.z[u][t][gq][1], a);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          float d[4];
          const uint32_t bb[2] = {st.b[u][j][nt][0], st.b[u][j][nt][1]};
          mma16816<T>(d, a, bb);
          acc[t][nt][0] += d[0] * st.s[u][t][gq][0];
          acc[t][nt][1] += d[1] * st.s[u][t][gq][0];
          acc[t][nt][2] += d[2] * st.s[u][t][gq][1];
          acc[t][nt][3] += d[3] * st.s[u][t][gq][1];
        }
      }
    }
  }
}

// PIPE = false: load U quads, compute them, repeat (two exposed DRAM round trips per warp at K = 4096 with
// int4 and U = 4).
// PIPE = true (software pipelining, register double buffer): the next step's loads are issued before the
// current step's arithmetic, so two steps (2 U quads per warp) are in flight and at K = 4096 (8 quads per
// warp) a warp waits one round trip instead of two.
template <class Codes, typename T, int NT, int RT, int U, int GPQ, bool PIPE>
__global__ void __launch_bounds__(kWarps * 32, PIPE ? 2 : 1)
    weight_only_decode_kernel(const T* __restrict__ x, const uint4* __restrict__ wq, const float* __restrict__ scales,
                              const int8_t* __restrict__ zeros, const float* __restrict__ bias, T* __restrict__ y,
                              int M, int N, int K, int group_size) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const TileGeometry geo(N, K, group_size);
  const int rt0 = blockIdx.x * RT;
  constexpr int kStep = kWarps * U;

  float acc[RT][NT][4];
#pragma unroll
  for (int i = 0; i < RT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  using Step = DecodeStep<Codes, NT, RT, U, GPQ>;
  if constexpr (!PIPE) {
    for (int q0 = warp; q0 < geo.n_quads; q0 += kStep) {
      Step st;
      decode_load(st, q0, x, wq, scales, zeros, M, K, group_size, geo, rt0, lane);
      decode_compute<Codes, T>(acc, st);
    }
  } else {
    // Two register buffers used in turn (the loop body is unrolled twice by hand): a copy `cur = nxt`
    // would wait for nxt's loads to land and serialize the steps again.
    Step sa, sb;
    decode_load(sa, warp, x, wq, scales, zeros, M, K, group_size, geo, rt0, lane);
    // The last step's prefetch is past K: its quads are out of range (zero weights, no x reads), only
    // clamped scale / zero-point loads, which hit L2.
    for (int q0 = warp; q0 < geo.n_quads; q0 += 2 * kStep) {
      decode_load(sb, q0 + kStep, x, wq, scales, zeros, M, K, group_size, geo, rt0, lane);
      decode_compute<Codes, T>(acc, sa);
      if (q0 + kStep >= geo.n_quads) break;
      decode_load(sa, q0 + 2 * kStep, x, wq, scales, zeros, M, K, group_size, geo, rt0, lane);
      decode_compute<Codes, T>(acc, sb);
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

template <class Codes, typename T, int NT, int RT, int U, int GPQ, bool PIPE>
cudaError_t launch_decode(const void* x, const void* wq, const float* scales, const int8_t* zeros, const float* bias,
                          void* y, int M, int N, int K, int group_size, cudaStream_t stream) {
  const int n_row_tiles = (N + 15) / 16;
  const dim3 grid((n_row_tiles + RT - 1) / RT);
  weight_only_decode_kernel<Codes, T, NT, RT, U, GPQ, PIPE><<<grid, kWarps * 32, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const uint4*>(wq), scales, zeros, bias, static_cast<T*>(y), M, N, K,
      group_size);
  return cudaGetLastError();
}

// pipe_small / pipe_big: the software-pipelined kernel at M <= 8 / M > 8. unroll (M <= 8 only): quads per
// step, Codes::kUnroll by default; kUnroll / 2 and 2 kUnroll only for GPQ == 1, the group sizes the
// benchmarks sweep. Measured for int4 on the H200 (2026-12-01, docs/CUDA_BACKEND.md): pipelining wins at
// M > 8 (two row tiles, one quad per step, 128 registers, no spills: 11.7 / 24.2 / 26.6 us against 12.3 /
// 31.1 / 26.6 us at M = 16) and loses at M <= 8 (U = 4 needs two 64-register buffers: capped at 128
// registers it spills; U = 2 has as many bytes in flight as the plain U = 4 kernel), so the default
// pipelines M > 8 only.
template <class Codes, typename T, int GPQ>
cudaError_t dispatch_rows(bool pipe_small, bool pipe_big, int unroll, const void* x, const void* wq,
                          const float* scales, const int8_t* zeros, const float* bias, void* y, int M, int N, int K,
                          int group_size, cudaStream_t stream) {
  constexpr int kU = Codes::kUnroll;
  if (M <= 8) {
    if (pipe_small) {
      if constexpr (GPQ == 1 && kU > 1) {
        if (unroll == kU / 2) {
          return launch_decode<Codes, T, 1, 1, kU / 2, GPQ, true>(x, wq, scales, zeros, bias, y, M, N, K, group_size,
                                                                  stream);
        }
      }
      return launch_decode<Codes, T, 1, 1, kU, GPQ, true>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    }
    if constexpr (GPQ == 1) {
      if (unroll == 2 * kU) {
        return launch_decode<Codes, T, 1, 1, 2 * kU, GPQ, false>(x, wq, scales, zeros, bias, y, M, N, K, group_size,
                                                                 stream);
      }
    }
    return launch_decode<Codes, T, 1, 1, kU, GPQ, false>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  if (pipe_big) {
    return launch_decode<Codes, T, 2, 2, 1, GPQ, true>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  return launch_decode<Codes, T, 2, 2, 2, GPQ, false>(x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

// The row-tile kernel for fp16 or bf16 x and any group size that is 0 or a multiple of 16.
template <class Codes, typename T>
cudaError_t dispatch_row_tile_decode(bool pipe_small, bool pipe_big, int unroll, const void* x, const void* wq,
                                     const float* scales, const int8_t* zeros, const float* bias, void* y, int M,
                                     int N, int K, int group_size, cudaStream_t stream) {
  if (group_size == 0 || group_size % 64 == 0) {
    return dispatch_rows<Codes, T, 1>(pipe_small, pipe_big, unroll, x, wq, scales, zeros, bias, y, M, N, K,
                                      group_size, stream);
  }
  if (group_size % 32 == 0) {
    return dispatch_rows<Codes, T, 2>(pipe_small, pipe_big, unroll, x, wq, scales, zeros, bias, y, M, N, K,
                                      group_size, stream);
  }
  return dispatch_rows<Codes, T, 4>(pipe_small, pipe_big, unroll, x, wq, scales, zeros, bias, y, M, N, K, group_size,
                                    stream);
}

// One warp per (row tile, quad): the lanes' fragments (exact q - z, unpacked by Codes in fp16, which holds
// every q - z of int4 and int8 exactly) are scaled in float32 into shared memory and written out as 16
// contiguous row segments (coalesced). w'(n, k) = float(q - z) * s, one rounding to O: bit for bit
// QuantizedWeight::dequantize(O).
template <class Codes, typename O>
__global__ void __launch_bounds__(kWarps * 32)
    weight_only_dequantize_kernel(const uint4* __restrict__ wq, const float* __restrict__ scales,
                                  const int8_t* __restrict__ zeros, O* __restrict__ w, int N, int K, int group_size) {
  __shared__ float tile[kWarps][16][65];  // +1 column: no bank conflicts on the transposed writes
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = lane / 4, cq = lane % 4;
  const TileGeometry geo(N, K, group_size);
  const size_t n_tiles = static_cast<size_t>(geo.n_row_tiles) * geo.n_quads;
  for (size_t tix = static_cast<size_t>(blockIdx.x) * kWarps + warp; tix < n_tiles;
       tix += static_cast<size_t>(gridDim.x) * kWarps) {
    const int q = tix % geo.n_quads, rt = tix / geo.n_quads;
    uint4 words[Codes::kVecs];
#pragma unroll
    for (int v = 0; v < Codes::kVecs; ++v) words[v] = wq[(tix * Codes::kVecs + v) * 32 + lane];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      // A k-tile lies inside one group (group sizes are multiples of 16).
      const int g = min(group_of(q * 64 + j * 16, group_size), geo.n_groups - 1);
      const size_t gi = static_cast<size_t>(g) * geo.n_pad + rt * 16 + r;
      uint32_t a[4];
      Codes::template fragment<__half>(words, j, Codes::template zero_pair<__half>(zeros[gi]),
                                       Codes::template zero_pair<__half>(zeros[gi + 8]), a);
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // register i: row r + 8 (i & 1), columns 2 cq + 8 (i >> 1) + {0, 1}
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&a[i]));
        const int row = r + 8 * (i & 1), col = j * 16 + 8 * (i >> 1) + 2 * cq;
        const float s = scales[gi + 8 * (i & 1)];
        tile[warp][row][col] = f.x * s;
        tile[warp][row][col + 1] = f.y * s;
      }
    }
    __syncwarp();
    for (int i = lane; i < 16 * 64; i += 32) {
      const int row = i / 64, col = i % 64;
      const int n = rt * 16 + row, k = q * 64 + col;
      if (n < N && k < K) w[static_cast<size_t>(n) * K + k] = from_float<O>(tile[warp][row][col]);
    }
    __syncwarp();
  }
}

template <class Codes>
cudaError_t launch_weight_only_dequantize(const void* wq, const float* scales, const int8_t* zeros, void* w,
                                          int dtype, int N, int K, int group_size, cudaStream_t stream) {
  const int threads = kWarps * 32;
  const size_t tiles = static_cast<size_t>((N + 15) / 16) * ((K + 63) / 64);
  const int blocks = static_cast<int>(std::min<size_t>((tiles + kWarps - 1) / kWarps, 132 * 8));
  const auto* words = static_cast<const uint4*>(wq);
  if (dtype == kF16) {
    weight_only_dequantize_kernel<Codes, __half>
        <<<blocks, threads, 0, stream>>>(words, scales, zeros, static_cast<__half*>(w), N, K, group_size);
  } else if (dtype == kBF16) {
    weight_only_dequantize_kernel<Codes, __nv_bfloat16>
        <<<blocks, threads, 0, stream>>>(words, scales, zeros, static_cast<__nv_bfloat16*>(w), N, K, group_size);
  } else if (dtype == kF32) {
    weight_only_dequantize_kernel<Codes, float>
        <<<blocks, threads, 0, stream>>>(words, scales, zeros, static_cast<float*>(w), N, K, group_size);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace
}  // namespace ptq::cuda
