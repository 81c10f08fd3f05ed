// Device primitives shared by the weight-only kernels (w4a16.cu, w8a16.cu): the m16n8k16 tensor-core
// product, fp16/bf16 pair arithmetic, rounding to the output type, the group of a column, and the parser of
// the kernels' tuning environment variables. Included only by .cu files (no LibTorch).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace ptq::cuda {
namespace {

constexpr int kWarps = 8;  // warps per block of the row-tile decode kernels and the dequantizers

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

// d += a * b: mma.m16n8k16, A (16 x 16, row) and B (16 x 8, col) in T, fp32 accumulators.
template <typename T>
__device__ __forceinline__ void mma16816_acc(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
template <>
__device__ __forceinline__ void mma16816_acc<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void mma16816_acc<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                            const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d = a * b. The zero accumulator is a constant the compiler folds into the instruction (C = RZ), so this
// costs the same as a separate "C = 0" asm statement.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  d[0] = d[1] = d[2] = d[3] = 0.f;
  mma16816_acc<T>(d, a, b);
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

// Calls set(key, value) for each "key=value" of the comma-separated environment variable `name` (the
// kernels' benchmarking knobs, read once per process by their callers).
template <typename F>
void for_each_tuning_item(const char* name, F set) {
  const char* env = std::getenv(name);
  if (env == nullptr) return;
  const std::string spec(env);
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) set(item.substr(0, eq), std::atoi(item.c_str() + eq + 1));
    pos = end + 1;
  }
}

}  // namespace
}  // namespace ptq::cuda
