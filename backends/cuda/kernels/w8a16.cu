// W8A16: the int8 code policy of the row-tile decode kernel and the dequantizer (weight_only_decode.cuh,
// shared with W4A16), and the launchers. Layout: cuda_kernels.h.
//
// Unpacking to exact q - z (|q - z| <= 255) with byte permutes instead of integer conversions:
//   fp16: 0x64 in the high byte of a half whose low byte is u = q + 128 is 1024 + u (the ulp in [1024, 2048)
//         is 1 and u < 1024), so one prmt builds two halves and one packed subtraction of 1024 + 128 + z
//         leaves q - z, exact.
//   bf16: its 8-bit significand cannot hold 256 values at a fixed exponent, so each byte goes through
//         float32 (0x4B0000uu is 2^23 + u), minus 2^23 + 128 + z, and the pair is rounded to bf16: exact,
//         since every integer of [-255, 255] has at most 8 significant bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>
#include <type_traits>

#include "backends/cuda/kernels/cuda_kernels.h"
#include "backends/cuda/kernels/mma_util.cuh"
#include "backends/cuda/kernels/weight_only_decode.cuh"

namespace ptq::cuda {
namespace {

// The int8 codes of the repacked layout: two 16-byte vectors per lane per quad; vector v holds k-tiles
// 2 v and 2 v + 1, each as two words (c8 = 0: columns 2 cq, 2 cq + 1; c8 = 1: columns 2 cq + 8, + 9) whose
// bytes are (row r, col), (row r, col + 1), (row r + 8, col), (row r + 8, col + 1), unsigned (q + 128).
struct Int8Codes {
  static constexpr int kVecs = 2;
  static constexpr int kUnroll = 2;  // 2 quads x 2 vectors: the same 64 bytes per lane in flight as int4

  template <typename T>
  __device__ __forceinline__ static uint32_t zero_pair(int z) {
    if constexpr (std::is_same_v<T, __half>) {
      const uint32_t h = 0x6400u + 128u + static_cast<uint32_t>(z);  // 1024 + 128 + z, z in [-128, 127]
      return h | (h << 16);
    } else {
      return __float_as_uint(8388608.f + 128.f + static_cast<float>(z));  // 2^23 + 128 + z, exact
    }
  }

  template <typename T>
  __device__ __forceinline__ static void fragment(const uint4 (&w)[kVecs], int j, uint32_t z_lo, uint32_t z_hi,
                                                  uint32_t (&a)[4]) {
    const uint4 v = w[j >> 1];
    const uint32_t w0 = (j & 1) ? v.z : v.x;  // columns 2 cq, 2 cq + 1 of k-tile j
    const uint32_t w1 = (j & 1) ? v.w : v.y;  // columns 2 cq + 8, 2 cq + 9
    if constexpr (std::is_same_v<T, __half>) {
      // Selector nibbles: 0-3 pick w's bytes, 4 picks 0x64. 0x4140: (b0, b1) -> row r; 0x4342: (b2, b3) -> r + 8.
      a[0] = sub_pair<T>(__byte_perm(w0, 0x64646464u, 0x4140), z_lo);
      a[1] = sub_pair<T>(__byte_perm(w0, 0x64646464u, 0x4342), z_hi);
      a[2] = sub_pair<T>(__byte_perm(w1, 0x64646464u, 0x4140), z_lo);
      a[3] = sub_pair<T>(__byte_perm(w1, 0x64646464u, 0x4342), z_hi);
    } else {
      a[0] = bf16_pair(w0, 0, z_lo);
      a[1] = bf16_pair(w0, 2, z_hi);
      a[2] = bf16_pair(w1, 0, z_lo);
      a[3] = bf16_pair(w1, 2, z_hi);
    }
  }

 private:
  // Bytes b, b + 1 of word as the bf16 pair (u - 128 - z): through float32 2^23 + u (selector 0x754b: byte b,
  // then 0x00, 0x00, 0x4B from 0x4B000000).
  __device__ __forceinline__ static uint32_t bf16_pair(uint32_t word, int b, uint32_t zf_bits) {
    const float zf = __uint_as_float(zf_bits);
    const float lo = __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7540u + b)) - zf;
    const float hi = __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7540u + b + 1)) - zf;
    const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&p);
  }
};

// The row-tile kernel's knobs for benchmarking: PTQ_W8A16_DECODE="unroll=u,pipe=p" (read once per process;
// unroll: quads per step at M <= 8, 2 by default, 1 or 4 for per-channel / multiple-of-64 groups; pipe: 0
// (default) never pipelines, -1 at M > 8 only (W4A16's default), 1 always).
// Measured on the H200 (2026-12-01, docs/CUDA_BACKEND.md, fp16, per-channel, (K, N) = (4096, 4096),
// (4096, 11008), (11008, 4096)): at M = 16 the pipelined kernel, which wins for int4, loses for int8
// (12.6 / 30.9 / 26.8 us against 11.8 / 28.0 / 24.3 us unpipelined: its two buffers hold twice the weight
// registers of int4 and spill, 44 bytes per-channel and up to 368 at groups of 16, under the 128-register cap
// of 2 blocks per SM); at M = 1, 4 quads per step lose to 2 (10.1 / 23.1 / 20.7 us against 7.5 / 16.8 /
// 15.2 us).
struct W8A16Tuning {
  int unroll = 0;
  int pipeline = 0;
};
W8A16Tuning default_w8a16_tuning() {
  static const W8A16Tuning tuning = [] {
    W8A16Tuning t;
    for_each_tuning_item("PTQ_W8A16_DECODE", [&t](const std::string& key, int v) {
      if (key == "unroll") t.unroll = v;
      if (key == "pipe") t.pipeline = v;
    });
    return t;
  }();
  return tuning;
}

}  // namespace

cudaError_t launch_w8a16_decode(const void* x, int dtype, const uint8_t* wq, const float* scales,
                                const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                                cudaStream_t stream) {
  if (M < 1 || M > 16 || K % 8 != 0 || (group_size != 0 && group_size % 16 != 0)) return cudaErrorInvalidValue;
  const W8A16Tuning t = default_w8a16_tuning();
  const bool pipe_small = t.pipeline == 1, pipe_big = t.pipeline != 0;
  if (dtype == kF16) {
    return dispatch_row_tile_decode<Int8Codes, __half>(pipe_small, pipe_big, t.unroll, x, wq, scales, zeros, bias, y,
                                                       M, N, K, group_size, stream);
  }
  if (dtype == kBF16) {
    return dispatch_row_tile_decode<Int8Codes, __nv_bfloat16>(pipe_small, pipe_big, t.unroll, x, wq, scales, zeros,
                                                              bias, y, M, N, K, group_size, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_w8a16_dequantize(const uint8_t* wq, const float* scales, const int8_t* zeros, void* w, int dtype,
                                    int N, int K, int group_size, cudaStream_t stream) {
  return launch_weight_only_dequantize<Int8Codes>(wq, scales, zeros, w, dtype, N, K, group_size, stream);
}

}  // namespace ptq::cuda
