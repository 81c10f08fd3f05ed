// W8A8 Linear kernel of the CPU backend on oneDNN's int8 matmul (AMX on Sapphire Rapids, else VNNI).
//
// What makes it fast on oneDNN 2.6 (measured, issue 4 / docs/PERFORMANCE.md):
//   - the int8 weight is reordered once, at kernel creation, into the blocked layout the matmul asks
//     for (format_tag::any): the plain layout costs 1.3-1.7x;
//   - primitives are created once per number of input rows M and cached;
//   - the packed layout is checked to run every M on a fast implementation (a GQA k/v shape ran M = 1 on
//     ref_int8 with the layout chosen for M = 128);
//   - no run-time scales: with DNNL_RUNTIME_F32_VAL scales oneDNN 2.6 leaves AMX (brg:avx512_core_amx_int8)
//     for gemm:jit, and per-row binary post-ops fall to ref_int8. So the matmul computes the raw
//     s8 x s8 -> s32 product and one fused pass of ours applies everything else.
// Numerics: bit for bit the reference's (backends/reference/reference_kernels.h):
//   acc[m, n] = sum_k qx qw - zx[m] * sum_k qw[n, k] - zw[n] * sum_k qx[m, k] + K zx[m] zw[n]
//             = sum_k (qx - zx)(qw - zw)   (exact in integers; the corrections are in int64)
//   y[m, n]   = float(acc) * sx[m] * sw[n] + bias[n]   (float32, in this order), then cast to x's dtype
// with the activation codes computed exactly as framework/activation_quant.h does (activation_quant_cpu.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "framework/backend.h"

namespace ptq::cpu {

// W8A8 schemes this kernel covers (int8 per-channel or per-tensor weights, sym or asym; activations
// static per-tensor or dynamic per-token, sym or asym).
Support int8_linear_supports(const LinearScheme& scheme);

std::shared_ptr<LinearKernel> make_onednn_int8_linear(const QuantizedLinearParams& params);

// The oneDNN implementation that runs `rows` input rows through `kernel` (made by make_onednn_int8_linear),
// e.g. brg:avx512_core_amx_int8; one starting with "ref" is oneDNN's slow reference code.
std::string onednn_int8_implementation(const LinearKernel& kernel, int64_t rows);

}  // namespace ptq::cpu
