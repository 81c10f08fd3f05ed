// Launchers of the CUDA backend's kernels: plain device pointers and a cudaStream_t, no LibTorch, so the
// .cu files compile with nvcc alone (a compile-only check keeps them building on machines whose LibTorch
// has no CUDA). The torch glue (backends/cuda/*.cc) owns the tensors, checks shapes and picks the launcher.
// Every launcher returns the launch's cudaError_t (cudaGetLastError) for the glue's check macro.
//
// Element types: dtype 0 = fp16, 1 = bf16, 2 = fp32 (fp32 only where a launcher says so).
//
// W4A16 repacked layout (what w4a16_repack in the glue writes; docs in backends/cuda/weight_only_repack.cc):
//   wq      uint32 [Npad / 16][Kpad / 64][32 lanes][4]: one 32-bit word per lane per 16x16 tile, holding
//           exactly that lane's A fragment of mma.m16n8k16 (8 unsigned 4-bit codes q + 8); a lane's four
//           consecutive k-tiles are one 16-byte load, a warp's 512 bytes are contiguous.
//   scales  float [G][Npad] (group-major, so a warp's rows of one group are neighbours)
//   zeros   int8  [G][Npad] signed zero points (all 0 when symmetric)
// W8A16 repacked layout (w8a16_repack in backends/cuda/weight_only_repack.cc): the same tiles, two 16-byte
// vectors per lane per 64-column quad:
//   wq      uint8 [Npad / 16][Kpad / 64][2 vectors][32 lanes][16]: vector v of lane l holds k-tiles 2v, 2v + 1,
//           each two words = that lane's A fragment of mma.m16n8k16 as unsigned codes q + 128; a warp's 1024
//           bytes per quad are contiguous. scales and zeros as for W4A16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ptq::cuda {

enum DType : int { kF16 = 0, kBF16 = 1, kF32 = 2 };

// W4A16 for M <= 16 (decode): y[M, N] = x[M, K] * dequant(W)^T + bias, fp32 accumulation on tensor cores.
// x and y are dtype (fp16 or bf16), x rows contiguous with stride K (K % 8 == 0, x 16-byte aligned);
// group_size is a multiple of 16, or 0 for one group per row (per-channel / per-tensor); bias: float [N]
// or nullptr.
cudaError_t launch_w4a16_decode(const void* x, int dtype, const uint32_t* wq, const float* scales,
                                const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                                cudaStream_t stream);

// The decode kernel's knobs (benchmarks and tests; the defaults are what launch_w4a16_decode uses).
// kernel: 0 the one-block-per-row-tile kernel (default: measured fastest on the H200), 1 the split-K
// cluster kernel (falls back to kernel 0 when its activation chunk would not fit in shared memory), 2 the
// row-tile kernel software-pipelined at every M (= kernel 0 with pipeline 1).
// Split-K only: stages = cp.async ring depth per warp (4, 8, 16; others mean 8), ksplit = K splits =
// cluster size (0: auto, at most 8), blocks_per_sm = what the auto split aims at (0: 2).
// Row-tile kernel only: pipeline = issue the next step's loads before the current step's arithmetic
// (register double buffer): -1 (default) at M > 8 only, 0 never, 1 always; unroll (M <= 8) = 64-column
// quads per warp step (0 or 4: 4; 8 without and 2 with pipelining, per-channel or multiple-of-64 groups).
struct W4A16DecodeTuning {
  int kernel = 0;
  int stages = 8;
  int ksplit = 0;
  int blocks_per_sm = 0;
  int unroll = 0;
  int pipeline = -1;
};
cudaError_t launch_w4a16_decode_tuned(const void* x, int dtype, const uint32_t* wq, const float* scales,
                                      const int8_t* zeros, const float* bias, void* y, int M, int N, int K,
                                      int group_size, const W4A16DecodeTuning& tuning, cudaStream_t stream);

// Dequantizes the repacked W4 weight into dense w[N, K] (dtype fp16, bf16 or fp32): (q - z) * s in float32, then
// one rounding (exactly QuantizedWeight::dequantize(dtype)). The prefill path multiplies it with cuBLAS.
cudaError_t launch_w4a16_dequantize(const uint32_t* wq, const float* scales, const int8_t* zeros, void* w, int dtype,
                                    int N, int K, int group_size, cudaStream_t stream);

// W8A16 for M <= 16 (decode), the same contract as launch_w4a16_decode (shared row-tile kernel, int8 codes;
// PTQ_W8A16_DECODE="unroll=u,pipe=p" overrides its knobs for benchmarks).
cudaError_t launch_w8a16_decode(const void* x, int dtype, const uint8_t* wq, const float* scales,
                                const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                                cudaStream_t stream);

// Dequantizes the repacked W8 weight into dense w[N, K] (fp16, bf16 or fp32), as launch_w4a16_dequantize.
cudaError_t launch_w8a16_dequantize(const uint8_t* wq, const float* scales, const int8_t* zeros, void* w, int dtype,
                                    int N, int K, int group_size, cudaStream_t stream);

// Per-token int8 activation quantization (framework/activation_quant.h formulas, bit for bit): one scale
// per row of x[M, K] (dtype fp16, bf16 or fp32). Symmetric: s = max|row| / 127; asymmetric: s and a zero
// point from the row's range. q: int8 [M, K]; scale: float [M]; zero: int32 [M] (asymmetric only, else
// may be nullptr).
cudaError_t launch_quantize_per_token_int8(const void* x, int dtype, int M, int K, bool symmetric, int8_t* q,
                                           float* scale, int32_t* zero, cudaStream_t stream);

// Static per-tensor quantization with a calibrated scale (and zero point, nullptr when symmetric) read from
// device memory: q = clamp(round(x / s + z), -128, 127).
cudaError_t launch_quantize_per_tensor_int8(const void* x, int dtype, int64_t n, const float* scale,
                                            const int32_t* zero, int8_t* q, cudaStream_t stream);

// The W8A8 epilogue: y[m, n] = float(acc[m, n] - zx[m] * wsum[n]) * sx[m] * sw[n] + bias[n], in float32 in
// this order without fused multiply-adds (the reference's rounding), then one rounding to dtype.
// sx / zx are per row (stride 1) or one value (x_stride 0); zx and bias may be nullptr. N % 4 == 0, and
// acc, sw, wsum, bias 16-byte aligned (vector loads).
cudaError_t launch_int8_epilogue(const int32_t* acc, const float* sx, const int32_t* zx, int x_stride,
                                 const float* sw, const int32_t* wsum, const float* bias, void* y, int dtype, int M,
                                 int N, cudaStream_t stream);

}  // namespace ptq::cuda
