// Weight-only schemes on CUDA (W4A16 and W8A16, per-group / per-channel / per-tensor, sym or asym): the
// weight repacked at convert time into mma fragments (weight_only_repack.h), a tensor-core decode kernel
// for M <= 16, and dequantize + cuBLAS (torch::linear) above.
#pragma once

#include <memory>

#include "framework/backend.h"

namespace ptq::cuda {

// Whether the weight-only kernels cover `s` (4- or 8-bit, activations not quantized), with the reason when not.
Support weight_only_supports(const LinearScheme& s);
// params.weight: int4 or int8, on a CUDA device; throws naming what is wrong otherwise.
std::shared_ptr<LinearKernel> make_weight_only_linear(const QuantizedLinearParams& params);

}  // namespace ptq::cuda
