#include "backends/cuda/cuda_backend.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include "backends/cuda/int8_linear.h"
#include "backends/cuda/kv_cache_cuda.h"
#include "backends/cuda/weight_only_linear.h"
#include "framework/error.h"

namespace ptq {

Support CudaBackend::supports_device(const torch::Device& device) const {
  if (!device.is_cuda()) return Support::no(fmt::format("the cuda backend runs on CUDA devices, not on {}", device.str()));
  if (!torch::cuda::is_available()) return Support::no("no CUDA device is visible to LibTorch");
  return Support::yes();
}

Support CudaBackend::supports(const LinearScheme& s) const {
  if (s.weight_bits == 0) return Support::no("float scheme: nothing to quantize");
  return s.act == ActQuant::kNone ? cuda::weight_only_supports(s) : cuda::int8_linear_supports(s);
}

std::shared_ptr<LinearKernel> CudaBackend::make_linear_kernel(const QuantizedLinearParams& params,
                                                              torch::ScalarType compute_dtype) const {
  // compute_dtype is not needed: each kernel takes fp16, bf16 (and where it can, fp32) x as it comes.
  PTQ_CHECK(params.weight.data.defined() && params.weight.data.device().is_cuda(),
            "cuda backend: the quantized weight must be on a CUDA device, it is on {}",
            params.weight.data.defined() ? params.weight.data.device().str() : std::string("(undefined)"));
  const Support s = supports(params.scheme());
  PTQ_CHECK(s.ok, "cuda backend: {}", s.reason);
  if (params.act == ActQuant::kNone) return cuda::make_weight_only_linear(params);
  return cuda::make_int8_linear(params);
}

Support CudaBackend::supports_kv(const KVQuantParams& params) const { return cuda::int8_kv_attention_supports(params); }

std::shared_ptr<KVCacheFormat> CudaBackend::make_kv_cache_format(const KVQuantParams& params) const {
  const Support s = supports_kv(params);
  PTQ_CHECK(s.ok, "cuda backend: cannot make the int8 KV cache: {}", s.reason);
  return std::make_shared<cuda::CudaInt8KVCacheFormat>(params);
}

void register_cuda_backend() { register_backend(std::make_shared<CudaBackend>()); }

}  // namespace ptq
