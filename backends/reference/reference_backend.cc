#include "backends/reference/reference_backend.h"

#include <torch/torch.h>

#include "backends/reference/reference_kernels.h"
#include "framework/error.h"

namespace ptq {

Support ReferenceBackend::supports(const LinearScheme& s) const {
  if (s.weight_bits != 0 && s.weight_bits != 3 && s.weight_bits != 4 && s.weight_bits != 8) {
    return Support::no(fmt::format("{}-bit weights: only 3, 4 and 8 bits are implemented", s.weight_bits));
  }
  if (s.group_size < kPerTensor) {
    return Support::no(fmt::format("group size {} is invalid (expected -1, 0 or a positive size)", s.group_size));
  }
  if (s.weight_bits == 0) {
    return Support::no(s.act == ActQuant::kNone
                           ? "float scheme: nothing to quantize, the Linear's float path runs it"
                           : "int8 activations with float weights are not implemented (quantize the weights too)");
  }
  if (s.act != ActQuant::kNone) {
    if (s.weight_bits != 8) {
      return Support::no(fmt::format("int8 activations need int8 weights, got {}-bit", s.weight_bits));
    }
    if (s.group_size > 0) {
      return Support::no(
          fmt::format("int8 activations need per-channel or per-tensor weights, got group size {} (group scales "
                      "vary along K, so a single integer GEMM cannot apply them)",
                      s.group_size));
    }
  }
  return Support::yes();
}

std::shared_ptr<LinearKernel> ReferenceBackend::make_linear_kernel(const QuantizedLinearParams& params,
                                                                   torch::ScalarType compute_dtype) const {
  // compute_dtype is not needed: reference kernels compute in whatever float dtype x arrives in.
  const LinearScheme scheme = params.scheme();
  Support s = supports(scheme);
  PTQ_CHECK(s.ok, "reference backend: cannot make a kernel for {}: {}", scheme.name(), s.reason);
  if (params.act == ActQuant::kNone) return std::make_shared<reference::WeightOnlyLinearKernel>(params);
  return std::make_shared<reference::Int8LinearKernel>(params);
}

std::shared_ptr<KVCacheFormat> ReferenceBackend::make_kv_cache_format(const KVQuantParams& params) const {
  return std::make_shared<Int8KVCacheFormat>(params);
}

std::shared_ptr<LinearKernel> ReferenceBackend::make_fake_quant_kernel(const FakeQuantLinearParams& params) const {
  return std::make_shared<reference::FakeQuantLinearKernel>(params);
}

void register_reference_backend() { register_backend(std::make_shared<ReferenceBackend>()); }

}  // namespace ptq
