// W8A8 on CUDA: a per-token (or static per-tensor) int8 activation quantization kernel, cuBLASLt's int8
// tensor-core GEMM into int32, and a dequantizing epilogue kernel (row scale x column scale + bias).
#pragma once

#include <memory>

#include "framework/backend.h"

namespace ptq::cuda {

Support int8_linear_supports(const LinearScheme& s);
std::shared_ptr<LinearKernel> make_int8_linear(const QuantizedLinearParams& params);

}  // namespace ptq::cuda
