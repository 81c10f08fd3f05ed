// Networks built without their weights, for layer-streamed quantization (framework/stream_quantize.h).
//
// While a DeferredWeightsGuard is alive on a thread, the parameter-creating constructors of the slots
// (ptq::Linear) and of the model families (norms, embeddings) give every parameter a placeholder
// instead of initialising it: a tensor of the right shape and dtype whose elements all alias ONE
// stored NaN (stride 0). A network of placeholders costs a few bytes per parameter, still answers
// sizes() (the loader checks shapes against it), refuses in-place writes (PyTorch rejects writes to
// overlapping memory), and turns any accidental read into NaN, which the calibration driver's
// non-finite guard reports, instead of silently computing with made-up weights.
//
// LibTorch 1.13 cannot set_data() a meta tensor to a CPU one, which is why this is not the meta
// device.
#pragma once

#include <torch/types.h>

#include <vector>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace ptq {

class DeferredWeightsGuard {
 public:
  DeferredWeightsGuard();
  ~DeferredWeightsGuard();
  DeferredWeightsGuard(const DeferredWeightsGuard&) = delete;
  DeferredWeightsGuard& operator=(const DeferredWeightsGuard&) = delete;

 private:
  bool previous_;
};

// Whether a DeferredWeightsGuard is alive on this thread.
bool deferred_weights_active();

// A placeholder of this shape and dtype.
torch::Tensor deferred_placeholder(torch::IntArrayRef shape, torch::ScalarType dtype = torch::kFloat32,
                                   torch::Device device = torch::kCPU);

// Whether `t` is a placeholder: more than one element, all strides 0.
bool is_deferred(const torch::Tensor& t);

// Module::to(device), except that a placeholder parameter becomes a placeholder on `device`: Module::to
// copies into a dense tensor, which would allocate every deferred weight in full on the device (a
// quantized checkpoint's float placeholders: the whole float model's size, on the GPU, before loading).
void move_to_device(torch::nn::Module& module, torch::Device device);

// Gives `target` the values of `source` (same shape; converted to target's dtype and device): a placeholder
// gets its own storage, allocated once here, any other tensor is written in place.
void fill_tensor(const torch::Tensor& target, const torch::Tensor& source);

}  // namespace ptq
