#include "backends/cpu/cpu_backend.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "backends/cpu/kv_cache_cpu.h"
#include "backends/cpu/onednn_int8_linear.h"
#include "backends/cpu/weight_only_linear.h"
#include "framework/error.h"

namespace ptq {

Support CpuBackend::supports_device(const torch::Device& device) const {
  if (!device.is_cpu()) return Support::no(fmt::format("the cpu backend runs on the CPU, not on {}", device.str()));
  return Support::yes();
}

Support CpuBackend::supports(const LinearScheme& s) const {
  if (s.weight_bits == 0) return Support::no("float scheme: nothing to quantize");
  return s.act == ActQuant::kNone ? cpu::weight_only_supports(s) : cpu::int8_linear_supports(s);
}

std::shared_ptr<LinearKernel> CpuBackend::make_linear_kernel(const QuantizedLinearParams& params,
                                                             torch::ScalarType compute_dtype) const {
  // compute_dtype is not needed: the kernels compute in float32 and return x's dtype.
  PTQ_CHECK(params.weight.data.defined() && params.weight.data.device().is_cpu(),
            "cpu backend: the quantized weight must be on the CPU");
  if (params.act == ActQuant::kNone) return cpu::make_weight_only_linear(params);
  return cpu::make_onednn_int8_linear(params);
}

Support CpuBackend::supports_kv(const KVQuantParams& params) const { return cpu::int8_kv_attention_supports(params); }

std::shared_ptr<KVCacheFormat> CpuBackend::make_kv_cache_format(const KVQuantParams& params) const {
  const Support s = supports_kv(params);
  PTQ_CHECK(s.ok, "cpu backend: cannot make the int8 KV cache: {}", s.reason);
  return std::make_shared<cpu::CpuInt8KVCacheFormat>(params);
}

void register_cpu_backend() { register_backend(std::make_shared<CpuBackend>()); }

}  // namespace ptq
