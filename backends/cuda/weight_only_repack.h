// Convert-time repacking of weight-only quantized weights into the CUDA kernels' fragment layouts
// (backends/cuda/kernels/cuda_kernels.h), one function per code width.
#pragma once

#include <torch/types.h>

#include "framework/quantized_weight.h"

namespace ptq::cuda {

// int4 (compressed-tensors int32 packing) -> int32 [Npad / 16, Kpad / 64, 32, 4] words.
torch::Tensor w4a16_repack(const QuantizedWeight& w);
// int8 (plain [N, K] codes) -> uint8 [Npad / 16, Kpad / 64, 2, 32, 16] (unsigned codes q + 128).
torch::Tensor w8a16_repack(const QuantizedWeight& w);

}  // namespace ptq::cuda
