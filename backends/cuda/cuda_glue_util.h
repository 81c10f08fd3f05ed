// Small helpers shared by the torch glue of the CUDA backend: the launchers' dtype code of a tensor and
// the current stream of a tensor's device.
#pragma once

#include <c10/cuda/CUDAStream.h>
#include <torch/types.h>

#include "backends/cuda/kernels/cuda_kernels.h"

namespace ptq::cuda {

// kF16 / kBF16 / kF32, or -1 for any other dtype.
inline int dtype_code(torch::ScalarType t) {
  switch (t) {
    case torch::kHalf: return kF16;
    case torch::kBFloat16: return kBF16;
    case torch::kFloat: return kF32;
    default: return -1;
  }
}

inline cudaStream_t stream_of(const torch::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

}  // namespace ptq::cuda
