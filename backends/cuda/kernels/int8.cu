// W8A8 helper kernels: int8 activation quantization (per token and static per tensor) and the
// dequantizing epilogue after cuBLASLt's int8 GEMM. The GEMM itself is cuBLASLt (backends/cuda/
// cublaslt_int8.cc). Both kernels reproduce framework/activation_quant.cc and the reference int8 linear
// bit for bit: IEEE division (__fdiv_rn: no reciprocal multiply), round half to even (rintf), and explicit
// __fmul_rn / __fadd_rn in the epilogue so nvcc cannot contract a * b + c into an FMA the reference lacks.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "backends/cuda/kernels/cuda_kernels.h"

namespace ptq::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  return static_cast<float>(v);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ int8_t code(float x, float s, float z) {
  const float t = __fadd_rn(__fdiv_rn(x, s), z);
  return static_cast<int8_t>(fminf(fmaxf(rintf(t), -128.f), 127.f));
}

// Block-wide max / min of one value per thread.
__device__ __forceinline__ float block_reduce(float v, bool is_max) {
  __shared__ float buf[kThreads / 32];
  for (int o = 16; o > 0; o /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : fminf(v, other);
  }
  if (threadIdx.x % 32 == 0) buf[threadIdx.x / 32] = v;
  __syncthreads();
  v = buf[0];
  for (int i = 1; i < kThreads / 32; ++i) v = is_max ? fmaxf(v, buf[i]) : fminf(v, buf[i]);
  __syncthreads();  // buf is reused by the next call
  return v;
}

// One block per row.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    per_token_kernel(const T* __restrict__ x, int K, bool symmetric, int8_t* __restrict__ q, float* __restrict__ scale,
                     int32_t* __restrict__ zero) {
  const size_t row = blockIdx.x;
  const T* xr = x + row * K;
  float hi = -FLT_MAX, lo = FLT_MAX;
  for (int k = threadIdx.x; k < K; k += kThreads) {
    const float v = to_float(xr[k]);
    hi = fmaxf(hi, symmetric ? fabsf(v) : v);
    lo = fminf(lo, v);
  }
  hi = block_reduce(hi, true);
  float s, z = 0.f;
  if (symmetric) {
    s = __fdiv_rn(hi, 127.f);
    if (s == 0.f) s = 1.f;
  } else {
    lo = fminf(block_reduce(lo, false), 0.f);
    hi = fmaxf(hi, 0.f);
    s = __fdiv_rn(__fsub_rn(hi, lo), 255.f);
    if (s == 0.f) s = 1.f;
    // Reference order: clamp(-128 - lo / s) first, then round.
    z = rintf(fminf(fmaxf(__fsub_rn(-128.f, __fdiv_rn(lo, s)), -128.f), 127.f));
  }
  if (threadIdx.x == 0) {
    scale[row] = s;
    if (!symmetric) zero[row] = static_cast<int32_t>(z);
  }
  int8_t* qr = q + row * K;
  for (int k = threadIdx.x; k < K; k += kThreads) qr[k] = code(to_float(xr[k]), s, z);
}

template <typename T>
__global__ void per_tensor_kernel(const T* __restrict__ x, int64_t n, const float* __restrict__ scale,
                                  const int32_t* __restrict__ zero, int8_t* __restrict__ q) {
  const float s = *scale;
  const float z = zero != nullptr ? static_cast<float>(*zero) : 0.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    q[i] = code(to_float(x[i]), s, z);
  }
}

// Four consecutive outputs per thread (N % 4 == 0: the glue pads N to a multiple of 4 for cuBLASLt anyway):
// 16-byte loads of the int32 accumulators and of the per-channel vectors.
template <typename T>
__global__ void epilogue_kernel(const int32_t* __restrict__ acc, const float* __restrict__ sx,
                                const int32_t* __restrict__ zx, int x_stride, const float* __restrict__ sw,
                                const int32_t* __restrict__ wsum, const float* __restrict__ bias, T* __restrict__ y,
                                int M, int N) {
  const int64_t total = static_cast<int64_t>(M) * N / 4;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int m = static_cast<int>(i * 4 / N), n = static_cast<int>(i * 4 % N);
    const int4 a4 = reinterpret_cast<const int4*>(acc)[i];
    const float4 sw4 = *reinterpret_cast<const float4*>(sw + n);
    const float s = sx[m * x_stride];
    int a[4] = {a4.x, a4.y, a4.z, a4.w};
    const float w[4] = {sw4.x, sw4.y, sw4.z, sw4.w};
    if (zx != nullptr) {
      // (qx - zx) . qw = qx . qw - zx * sum_k qw: the zero point's share, exact in int32.
      const int4 ws4 = *reinterpret_cast<const int4*>(wsum + n);
      const int z = zx[m * x_stride];
      a[0] -= z * ws4.x;
      a[1] -= z * ws4.y;
      a[2] -= z * ws4.z;
      a[3] -= z * ws4.w;
    }
    float4 b4 = make_float4(0.f, 0.f, 0.f, 0.f);
    if (bias != nullptr) b4 = *reinterpret_cast<const float4*>(bias + n);
    const float b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float v = __fmul_rn(__fmul_rn(static_cast<float>(a[e]), s), w[e]);
      if (bias != nullptr) v = __fadd_rn(v, b[e]);
      y[i * 4 + e] = from_float<T>(v);
    }
  }
}

int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 16)); }

}  // namespace

cudaError_t launch_quantize_per_token_int8(const void* x, int dtype, int M, int K, bool symmetric, int8_t* q,
                                           float* scale, int32_t* zero, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  if (dtype == kF16) {
    per_token_kernel<<<M, kThreads, 0, stream>>>(static_cast<const __half*>(x), K, symmetric, q, scale, zero);
  } else if (dtype == kBF16) {
    per_token_kernel<<<M, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), K, symmetric, q, scale, zero);
  } else {
    per_token_kernel<<<M, kThreads, 0, stream>>>(static_cast<const float*>(x), K, symmetric, q, scale, zero);
  }
  return cudaGetLastError();
}

cudaError_t launch_quantize_per_tensor_int8(const void* x, int dtype, int64_t n, const float* scale,
                                            const int32_t* zero, int8_t* q, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (dtype == kF16) {
    per_tensor_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<const __half*>(x), n, scale, zero, q);
  } else if (dtype == kBF16) {
    per_tensor_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), n, scale, zero, q);
  } else {
    per_tensor_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<const float*>(x), n, scale, zero, q);
  }
  return cudaGetLastError();
}

cudaError_t launch_int8_epilogue(const int32_t* acc, const float* sx, const int32_t* zx, int x_stride,
                                 const float* sw, const int32_t* wsum, const float* bias, void* y, int dtype, int M,
                                 int N, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(M) * N / 4;
  if (N % 4 != 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (dtype == kF16) {
    epilogue_kernel<<<grid_for(n), kThreads, 0, stream>>>(acc, sx, zx, x_stride, sw, wsum, bias,
                                                          static_cast<__half*>(y), M, N);
  } else if (dtype == kBF16) {
    epilogue_kernel<<<grid_for(n), kThreads, 0, stream>>>(acc, sx, zx, x_stride, sw, wsum, bias,
                                                          static_cast<__nv_bfloat16*>(y), M, N);
  } else {
    epilogue_kernel<<<grid_for(n), kThreads, 0, stream>>>(acc, sx, zx, x_stride, sw, wsum, bias,
                                                          static_cast<float*>(y), M, N);
  }
  return cudaGetLastError();
}

}  // namespace ptq::cuda
