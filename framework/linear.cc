#include "framework/linear.h"

#include <torch/torch.h>

#include <vector>

#include "framework/deferred_weights.h"

namespace ptq {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias)
    : in_features_(in_features), out_features_(out_features) {
  // Weights are overwritten by the loader; the init only matters for tests that train or use random nets.
  // Under a DeferredWeightsGuard (layer-streamed quantization) they are placeholders, loaded later.
  const bool defer = deferred_weights_active();
  weight = register_parameter("weight",
                              defer ? deferred_placeholder({out_features, in_features})
                                    : torch::randn({out_features, in_features}) / std::sqrt(double(in_features)),
                              /*requires_grad=*/false);
  if (with_bias)
    bias = register_parameter("bias", defer ? deferred_placeholder({out_features}) : torch::zeros({out_features}),
                              /*requires_grad=*/false);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  for (auto& observer : observers_) observer->observe(x);
  if (kernel_) return kernel_->forward(x);
  // One float32 input row on the CPU (batch-1 decode, e.g. a float lm_head): torch::linear runs OpenBLAS's
  // sgemm, which packs the whole weight even for M = 1; the gemv behind torch::mv is 2-3x faster there
  // (32000 x 2048: 73 -> 24 ms, docs/PERFORMANCE.md).
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32 &&
      x.dim() >= 1 && x.numel() == x.size(-1) && weight.dim() == 2) {
    torch::Tensor y = torch::mv(weight, x.reshape({-1}));
    if (bias.defined()) y.add_(bias);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return y.view(shape);
  }
  return torch::linear(x, weight, bias);
}

void LinearImpl::replace_weight(const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters(/*recurse=*/false)) {
    if (item.key() != "weight") continue;
    item.value().set_data(w);
    weight = item.value();
  }
}

std::vector<std::shared_ptr<LinearImpl>> collect_linears(torch::nn::Module& root) {
  std::vector<std::shared_ptr<LinearImpl>> out;
  for (auto& module : root.modules(/*include_self=*/true)) {
    if (auto linear = std::dynamic_pointer_cast<LinearImpl>(module)) out.push_back(linear);
  }
  return out;
}

}  // namespace ptq
