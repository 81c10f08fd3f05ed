// int8 x int8 -> int32 GEMM on cuBLASLt's IMMA tensor-core kernels: c[M, N] = a[M, K] b[N, K]^T, all
// row-major (cuBLASLt sees the column-major "TN" problem c^T = b a^T, the one layout its int8 kernels
// take without reordering). No LibTorch here; the caller passes a workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ptq::cuda {

// Bytes of workspace int8_gemm_s32 may use.
inline constexpr size_t kCublasLtWorkspaceBytes = 32u << 20;

// N and K must be multiples of 4 (cuBLASLt's int8 leading-dimension rule; the glue pads).
// Throws ptq::Error when cuBLASLt fails or has no algorithm. The algorithm is chosen once per (M, N, K)
// among cuBLASLt's heuristic candidates by timing them on the first call, and cached.
void int8_gemm_s32(const int8_t* a, const int8_t* b, int32_t* c, int M, int N, int K, void* workspace,
                   size_t workspace_bytes, cudaStream_t stream);

}  // namespace ptq::cuda
