// The CPU backend ("cpu"): real quantized Linear kernels for x86 CPUs.
//   W8A8 (int8 per-channel/per-tensor weights; int8 activations static per-tensor or dynamic per-token):
//       oneDNN int8 matmul, AMX or VNNI (onednn_int8_linear.h)
//   W8A16, W4A16 (per-channel, per-tensor, or groups that are a multiple of 16; sym or asym):
//       hand-written AVX-512 kernels (weight_only_linear.h)
//   int8 KV cache (static per-channel, dynamic per-token): attention over the int8 codes in AVX-512
//       (kv_cache_cpu.h); a cache made for another device is the reference cache
// Everything else (3-bit weights, other group sizes, CPUs without AVX-512, non-CPU devices) is declined
// with a reason, and select_backend() / make_int8_kv_cache_format() fall back to the reference backend.
#pragma once

#include "framework/backend.h"

namespace ptq {

inline constexpr const char* kCpuBackendName = "cpu";

class CpuBackend : public Backend {
 public:
  std::string name() const override { return kCpuBackendName; }
  Support supports_device(const torch::Device& device) const override;
  Support supports(const LinearScheme& scheme) const override;
  std::shared_ptr<LinearKernel> make_linear_kernel(const QuantizedLinearParams& params,
                                                   torch::ScalarType compute_dtype) const override;
  Support supports_kv(const KVQuantParams& params) const override;
  std::shared_ptr<KVCacheFormat> make_kv_cache_format(const KVQuantParams& params) const override;
};

// Registers the CPU backend under "cpu" (replacing an earlier registration).
void register_cpu_backend();

}  // namespace ptq
