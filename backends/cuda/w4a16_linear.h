// W4A16 on CUDA: the weight repacked at convert time into mma fragments (backends/cuda/kernels/
// cuda_kernels.h), a tensor-core decode kernel for M <= 16, and dequantize + cuBLAS (torch::linear) above.
#pragma once

#include <memory>

#include "framework/backend.h"

namespace ptq::cuda {

// Whether the W4A16 kernels cover `s` (4-bit, activations not quantized), with the reason when not.
Support w4a16_supports(const LinearScheme& s);
// params.weight: int4, on a CUDA device; throws naming what is wrong otherwise.
std::shared_ptr<LinearKernel> make_w4a16_linear(const QuantizedLinearParams& params);

}  // namespace ptq::cuda
