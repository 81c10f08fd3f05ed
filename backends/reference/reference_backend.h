// The reference backend: every scheme ptq knows, in plain LibTorch ops, on any device. It is the ground
// truth of the optimized backends and the calibration backend (fake-quant kernels).
#pragma once

#include <memory>
#include <string>

#include "framework/backend.h"

namespace ptq {

class ReferenceBackend : public Backend {
 public:
  std::string name() const override { return kReferenceBackendName; }
  // Weight-only: 3/4/8 bits, any group size, sym/asym. W8A8: int8 per-channel or per-tensor weights
  // (sym/asym) with int8 activations, static per-tensor or dynamic per-token (sym/asym).
  Support supports(const LinearScheme& scheme) const override;
  std::shared_ptr<LinearKernel> make_linear_kernel(const QuantizedLinearParams& params,
                                                   torch::ScalarType compute_dtype) const override;
  Support supports_kv(const KVQuantParams& params) const override { return Support::yes(); }
  // Int8KVCacheFormat (framework/kv_quant.h): static per-channel or dynamic per-token.
  std::shared_ptr<KVCacheFormat> make_kv_cache_format(const KVQuantParams& params) const override;
  std::shared_ptr<LinearKernel> make_fake_quant_kernel(const FakeQuantLinearParams& params) const override;
};

// Registers the reference backend under "reference" (replacing an earlier registration). Idempotent.
void register_reference_backend();

}  // namespace ptq
