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

torch::Tensor deferred_placeholder(torch::IntArrayRef shape, torch::ScalarType dtype, torch::Device device) {
  torch::Tensor one = torch::full({1}, std::numeric_limits<float>::quiet_NaN(),
                                  torch::TensorOptions().dtype(dtype).device(device));
  if (shape.empty()) return one.reshape({});
  return one.expand(shape);
}

bool is_deferred(const torch::Tensor& t) {
  if (!t.defined() || t.numel() <= 1 || t.dim() == 0) return false;
  for (int64_t stride : t.strides())
    if (stride != 0) return false;
  return true;
}

void move_to_device(torch::nn::Module& module, torch::Device device) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters(/*recurse=*/true))
    if (is_deferred(p) && p.device() != device) p.set_data(deferred_placeholder(p.sizes(), p.scalar_type(), device));
  module.to(device);  // the rest; a tensor already on `device` is left as it is
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
