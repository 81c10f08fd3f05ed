// W8A16 / W4A16 Linear kernels of the CPU backend: the weight is repacked once, at kernel creation, into
// the AVX-512 layout of weight_only_avx512.h (the original QuantizedWeight is not kept), then
//   M <= small_m_limit():  the AVX-512 kernel, weight rows split across threads (decode: memory bound,
//                          the packed weight is streamed once per call; larger M: rows of x four at a
//                          time against weight rows still in L1);
//   larger M:              dequantize the packed weight to float32 once per call (AVX-512, in parallel)
//                          and run torch::linear. Measured here this never wins up to M = 512 against
//                          OpenBLAS, so the default limit is unbounded; the path stays for BLASes that are
//                          faster than our kernel at large M (set PTQ_CPU_SMALL_M to use it).
// Numerics: the dequantized weight is the reference's bit for bit; sums are in float32 in another order,
// so results match the reference within float32 rounding (tolerances.h: kFp32Rel / kKernelNmse). Inputs
// in bf16/fp16 are computed in float32 and rounded once at the end.
#pragma once

#include <memory>

#include "framework/backend.h"

namespace ptq::cpu {

// Which weight-only schemes the AVX-512 kernels cover; the reason names what is missing.
Support weight_only_supports(const LinearScheme& scheme);

// Throws unless weight_only_supports(params.scheme()) and the CPU has AVX-512.
std::shared_ptr<LinearKernel> make_weight_only_linear(const QuantizedLinearParams& params);

// Input rows up to which the AVX-512 kernel runs; above it, dequantize + torch::linear (measured:
// docs/PERFORMANCE.md, "CPU kernels"). The environment variable PTQ_CPU_SMALL_M overrides it (read once).
int64_t weight_only_small_m_limit();

}  // namespace ptq::cpu
