// The quantizable Linear slot. Every linear layer of a ptq network is a ptq::Linear: it owns the float
// weight [out_features, in_features] (and optional bias [out_features]) and a swappable kernel that
// computes y = x W^T + b. LibTorch C++ has no forward hooks, so observation (calibration statistics)
// and kernel swapping (fake-quant during QUANTIZE, a backend's real kernel after convert()) happen here.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ptq {

struct QuantizedLinearParams;  // framework/backend.h

// Computes the Linear's output in place of the float matmul (fake-quant, or a real quantized kernel).
class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  // x: [..., in_features] in the compute dtype; returns [..., out_features] in the same dtype.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  virtual std::string name() const = 0;        // e.g. "reference:w4a16-g128"
  virtual int64_t weight_bytes() const = 0;    // bytes of the stored weight representation
};

// Sees every input of a Linear before it is multiplied (calibration statistics).
class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  virtual void observe(const torch::Tensor& x) = 0;
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool with_bias);

  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool has_bias() const { return bias.defined(); }

  // Full dotted name in the checkpoint (e.g. "model.layers.0.self_attn.q_proj"); set by the network.
  const std::string& path() const { return path_; }
  void set_path(std::string path) { path_ = std::move(path); }

  // nullptr restores the float path.
  void set_kernel(std::shared_ptr<LinearKernel> kernel) { kernel_ = std::move(kernel); }
  const std::shared_ptr<LinearKernel>& kernel() const { return kernel_; }
  std::string kernel_name() const { return kernel_ ? kernel_->name() : "float"; }

  // Makes `w` the layer's weight (same shape, or empty to release it): the registered parameter and the
  // `weight` member both point at it afterwards, so a tied weight (lm_head sharing the embedding
  // matrix) is untied rather than overwritten.
  void replace_weight(const torch::Tensor& w);

  void add_observer(std::shared_ptr<LinearObserver> observer) { observers_.push_back(std::move(observer)); }
  void clear_observers() { observers_.clear(); }

  torch::Tensor weight;  // [out_features, in_features]
  torch::Tensor bias;    // [out_features] or undefined

  // The layer's quantized form, the source of truth for convert() and the checkpoint writer; nullptr
  // while the layer is float. QUANTIZE fills it from the weight; DEPLOY gives it the right shapes
  // (zeros) for load_checkpoint to fill. After convert() the float `weight` is released (an empty
  // tensor) so only the quantized copy stays resident.
  std::shared_ptr<QuantizedLinearParams> quantized;
  // The backend convert() picked for `quantized` ("" before convert) and why it is not the one asked
  // for ("" when it is): reports, and load_checkpoint's kernel rebuild.
  std::string backend_name;
  std::string backend_fallback_reason;

 private:
  int64_t in_features_;
  int64_t out_features_;
  std::string path_;
  std::shared_ptr<LinearKernel> kernel_;
  std::vector<std::shared_ptr<LinearObserver>> observers_;
};
TORCH_MODULE(Linear);

// Every Linear slot below `root`, in registration order (which is the network's execution order).
std::vector<std::shared_ptr<LinearImpl>> collect_linears(torch::nn::Module& root);

}  // namespace ptq
