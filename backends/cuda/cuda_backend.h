// The CUDA backend ("cuda"): quantized Linear kernels for NVIDIA GPUs (written for Hopper, sm_90).
//   W4A16 and W8A16 (int4 / int8, sym or asym; groups that are a multiple of 16, per-channel, per-tensor):
//       tensor-core decode kernel for M <= 16, dequantize + cuBLAS above (weight_only_linear.h)
//   W8A8 (int8 symmetric per-channel / per-tensor weights; int8 activations dynamic per-token or static
//       per-tensor, sym or asym): int8 quantization kernel + cuBLASLt int8 GEMM + epilogue (int8_linear.h)
//   int8 KV cache (static per-channel, dynamic per-token): split-K decode attention over the int8 codes,
//       dequantize + torch attention for prefill (kv_cache_cuda.h)
// Declined with a reason (select_backend() then uses the reference backend): CPU devices, 3-bit weights,
// other group sizes, asymmetric int8 weights with int8 activations (W8A8).
// This header is plain C++ (no CUDA types): builtin_backends.cc includes it.
#pragma once

#include "framework/backend.h"

namespace ptq {

inline constexpr const char* kCudaBackendName = "cuda";

class CudaBackend : public Backend {
 public:
  std::string name() const override { return kCudaBackendName; }
  Support supports_device(const torch::Device& device) const override;
  Support supports(const LinearScheme& scheme) const override;
  std::shared_ptr<LinearKernel> make_linear_kernel(const QuantizedLinearParams& params,
                                                   torch::ScalarType compute_dtype) const override;
  Support supports_kv(const KVQuantParams& params) const override;
  std::shared_ptr<KVCacheFormat> make_kv_cache_format(const KVQuantParams& params) const override;
};

// Registers the CUDA backend under "cuda" (replacing an earlier registration).
void register_cuda_backend();

}  // namespace ptq
