// One check for every CUDA and cuBLASLt status in the glue (STYLE.md: one macro per status-code API,
// naming the statement and where it failed). Throws ptq::Error; never aborts.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "framework/error.h"

#define PTQ_CUDA_CHECK(stmt)                                                                               \
  do {                                                                                                     \
    const cudaError_t ptq_cuda_err_ = (stmt);                                                              \
    PTQ_CHECK(ptq_cuda_err_ == cudaSuccess, "cuda backend: {} failed: {} ({}:{})", #stmt,                   \
              cudaGetErrorString(ptq_cuda_err_), __FILE__, __LINE__);                                      \
  } while (false)

#define PTQ_CUBLASLT_CHECK(stmt)                                                                           \
  do {                                                                                                     \
    const cublasStatus_t ptq_blas_st_ = (stmt);                                                            \
    PTQ_CHECK(ptq_blas_st_ == CUBLAS_STATUS_SUCCESS, "cuda backend: {} failed: {} ({}:{})", #stmt,          \
              cublasLtGetStatusString(ptq_blas_st_), __FILE__, __LINE__);                                  \
  } while (false)
