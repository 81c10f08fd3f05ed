#include "framework/deferred_weights.h"

#include <torch/torch.h>

#include <limits>

namespace ptq {
namespace {
thread_local bool deferred = false;
}  // namespace

DeferredWeightsGuard::DeferredWeightsGuard() : previous_(deferred) { deferred = true; }
DeferredWeightsGuard::~DeferredWeightsGuard() { deferred = previous_; }

bool deferred_weights_active() { return deferred; }

torch::Tensor deferred_placeholder(torch::IntArrayRef shape, torch::ScalarType dtype) {
  torch::Tensor one = torch::full({1}, std::numeric_limits<float>::quiet_NaN(), torch::TensorOptions().dtype(dtype));
  if (shape.empty()) return one.reshape({});
  return one.expand(shape);
}

bool is_deferred(const torch::Tensor& t) {
  if (!t.defined() || t.numel() <= 1 || t.dim() == 0) return false;
  for (int64_t stride : t.strides())
    if (stride != 0) return false;
  return true;
}

void fill_tensor(const torch::Tensor& target, const torch::Tensor& source) {
  torch::NoGradGuard no_grad;
  if (!is_deferred(target)) {
    target.copy_(source);
    return;
  }
  torch::Tensor value = torch::empty(target.sizes(), target.options());
  value.copy_(source);
  target.set_data(value);
}

}  // namespace ptq
