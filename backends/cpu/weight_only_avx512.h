// AVX-512 weight-only kernels (W8A16, W4A16): y = x · dequantize(W)^T for small M (decode), streaming the
// packed weights once and dequantizing them in registers. No LibTorch in this interface: the file is
// compiled with -mavx512* and must only be called after cpu::has_avx512() (cpu_features.h).
//
// Prepacked layout (made by weight_only_linear.cc from a QuantizedWeight):
//   K is padded to Kp (int8: a multiple of 16, int4: a multiple of 128) with code 0; x must be padded
//   with zeros to Kp as well, so padded columns contribute nothing whatever their dequantized value.
//   int8:  codes int8 [N, Kp], row-major, signed.
//   int4:  bytes [N, Kp / 2]. Each 128-column superblock of a row is 16 little-endian uint32 words;
//          nibble j (bits 4j..4j+3) of word i holds column 128 b + 16 j + i, unsigned (q + 8). So one
//          64-byte load holds eight 16-column chunks, and chunk j is (words >> 4j) & 15, lane i being
//          column 16 j + i: the shifts replace any shuffle.
//   scale  float [N, Gp] and zero int32 [N, Gp] per group of `group` columns (a multiple of 16, or Kp
//          for per-channel); zero is in the stored domain (int8: z, int4: z + 8). Gp = ceil(Kp / group),
//          padding groups have scale 0.
// Dequantization is the reference's, bit for bit: w = float(code - zero) * scale (float32); only the
// order of the float sums differs from the reference's matmul.
#pragma once

#include <cstdint>

namespace ptq::cpu {

struct PackedWeightView {
  int bits = 8;       // 8 or 4
  int64_t N = 0;      // output features
  int64_t Kp = 0;     // padded input features
  int64_t group = 0;  // columns per scale group (multiple of 16)
  int64_t Gp = 0;     // scale columns per row
  const uint8_t* codes = nullptr;
  const float* scale = nullptr;
  const int32_t* zero = nullptr;
};

// y[m, n] = sum_k x[m, k] * w(n, k) for m in [0, M), n in [n0, n1). x: float [M, Kp] (zero-padded),
// y: float with row stride ldy. Any M; rows of x are taken four at a time.
void weight_only_gemm_avx512(const PackedWeightView& w, const float* x, int64_t M, float* y, int64_t ldy,
                             int64_t n0, int64_t n1);

// The dequantized rows [n0, n1) into out (float, row stride ldo, Kp columns written).
void weight_only_dequantize_avx512(const PackedWeightView& w, float* out, int64_t ldo, int64_t n0, int64_t n1);

}  // namespace ptq::cpu
