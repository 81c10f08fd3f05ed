// How one quantized linear is stored in a checkpoint: the compressed-tensors tensor names, dtypes
// and shapes (docs/FORMAT.md has the table), with the conversion between them and
// QuantizedLinearParams.
//
// One description serves writing and reading: compressed_tensors_layout(params) lists the tensors a
// layer with these params is stored as, each with its exact dtype and shape, how to produce it
// (save) and how to copy it back into the params (load). The loader checks a checkpoint against the
// layout of the network's empty DEPLOY structure, so a writer change can never drift from the
// reader's checks.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/backend.h"

namespace ptq {

// compressed-tensors' CompressionFormat of a layer:
//   pack-quantized  weight-only layers (A16): codes packed into int32, 32 / bits per word. What
//                   vLLM's WNA16 kernels load, for 4- and 8-bit weights alike (vLLM refuses
//                   int-quantized W8A16).
//   int-quantized   layers with int8 activations (W8A8, W4A8): one int8 code per weight,
//                   unpacked, as vLLM's W8A8 int8 kernels load it.
enum class CompressedFormat { kPackQuantized, kIntQuantized };
std::string to_string(CompressedFormat format);  // "pack-quantized", "int-quantized"
CompressedFormat compressed_format(const LinearScheme& scheme);

struct StoredTensor {
  std::string suffix;  // the name after "<layer>.": "weight_packed", "weight_scale", ...
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  // The tensor as written (on the params' device; the writer moves it to CPU).
  std::function<torch::Tensor()> encode;
  // Copies a stored tensor (already checked to have `dtype` and `shape`) into the params, in place:
  // tensors that kernels or the Linear share stay shared. Throws ptq::Error when the values cannot
  // be right (weight_shape disagrees, codes out of range).
  std::function<void(const torch::Tensor& stored)> decode;
};

// The tensors of a quantized linear with these params, in writing order. The lambdas hold the
// params' tensors (handles, not copies), so decode() fills exactly those.
std::vector<StoredTensor> compressed_tensors_layout(const QuantizedLinearParams& params);

// Every Linear below `root` with its dotted module name, which prefixes its tensors
// ("model.layers.0.mlp.up_proj"). collect_linears() without the names, and usable on a const
// network.
std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>> named_linears(
    const torch::nn::Module& root);

// Every suffix a layout can contain: a checkpoint tensor "<layer>.<suffix>" that no quantized layer
// of the network read means the checkpoint quantizes a layer that the network keeps in float.
const std::vector<std::string>& quantized_tensor_suffixes();

}  // namespace ptq
