#include "framework/checkpoint_layout.h"

#include <torch/torch.h>

#include "framework/error.h"

namespace ptq {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// compressed-tensors keeps one scale (and zero point) of shape [1] for a per-tensor weight, where
// QuantizedWeight repeats the value in every row ([out, 1]) so that kernels see one shape.
bool per_tensor(const QuantizedWeight& w) { return w.group_size == kPerTensor; }
torch::Tensor first_value(const torch::Tensor& t) {
  return t.reshape({-1}).narrow(0, 0, 1).contiguous();
}

std::vector<int64_t> sizes_of(const torch::Tensor& t) { return t.sizes().vec(); }

StoredTensor packed_codes(const QuantizedWeight& w) {
  // pack-quantized: codes packed along the input dimension (compressed-tensors pack_to_int32,
  // packed_dim 1). QuantizedWeight's int32 formats are this layout already; 8-bit codes are kept
  // unpacked in memory.
  const bool already_packed = w.packing != PackingFormat::kInt8Plain;
  return {
      "weight_packed",
      torch::kInt32,
      {w.out_features(), ceil_div(w.in_features(), 32 / w.bits)},
      [w, already_packed] { return already_packed ? w.data : pack_int32(w.data, w.bits, 1); },
      [w, already_packed](const torch::Tensor& stored) {
        w.data.copy_(already_packed ? stored : unpack_int32(stored, w.bits, w.in_features(), 1));
      }};
}

StoredTensor int8_codes(const QuantizedWeight& w) {
  // int-quantized: one signed code per int8, whatever the bit width.
  const bool packed_in_memory = w.packing != PackingFormat::kInt8Plain;
  return {"weight",
          torch::kInt8,
          {w.out_features(), w.in_features()},
          [w] { return w.unpacked_int8(); },
          [w, packed_in_memory](const torch::Tensor& stored) {
            w.data.copy_(packed_in_memory ? pack_int32(stored.contiguous(), w.bits, 1) : stored);
          }};
}

StoredTensor weight_shape(const QuantizedWeight& w) {
  // pack-quantized records the unpacked shape (int64 [2]) because the packed one rounds `in` up.
  const int64_t out = w.out_features(), in = w.in_features();
  return {"weight_shape",
          torch::kInt64,
          {2},
          [out, in] {
            return torch::tensor(std::vector<int64_t>{out, in}, torch::kInt64);
          },
          [out, in](const torch::Tensor& stored) {
            const int64_t a = stored[0].item<int64_t>(), b = stored[1].item<int64_t>();
            PTQ_CHECK(a == out && b == in, "holds [{}, {}], but the layer is [{}, {}]", a, b, out,
                      in);
          }};
}

StoredTensor weight_scale(const QuantizedWeight& w) {
  // float32 whatever the compute dtype (compressed-tensors would use the weight's dtype; float32
  // keeps our scales exact, and vLLM casts scales on load).
  std::vector<int64_t> shape = per_tensor(w) ? std::vector<int64_t>{1} : sizes_of(w.scale);
  const bool one = per_tensor(w);
  return {
      "weight_scale", torch::kFloat32, shape,
      [w, one] { return one ? first_value(w.scale) : w.scale; },
      [w](const torch::Tensor& stored) { w.scale.copy_(stored); }};  // [1] broadcasts to [out, 1]
}

StoredTensor weight_zero_point(const QuantizedWeight& w, CompressedFormat format) {
  // Signed int8 zero points; pack-quantized packs per-channel and per-group ones along the output
  // dimension (compressed-tensors packs weight_zero_point with packed_dim 0), a per-tensor one
  // stays [1].
  if (per_tensor(w)) {
    return {"weight_zero_point",
            torch::kInt8,
            {1},
            [w] { return first_value(w.zero_point); },
            [w](const torch::Tensor& stored) { w.zero_point.copy_(stored); }};
  }
  if (format == CompressedFormat::kIntQuantized) {
    return {"weight_zero_point", torch::kInt8, sizes_of(w.zero_point), [w] { return w.zero_point; },
            [w](const torch::Tensor& stored) { w.zero_point.copy_(stored); }};
  }
  const int64_t out = w.out_features();
  return {"weight_zero_point",
          torch::kInt32,
          {ceil_div(out, 32 / w.bits), w.zero_point.size(1)},
          [w] { return pack_int32(w.zero_point.contiguous(), w.bits, 0); },
          [w, out](const torch::Tensor& stored) {
            w.zero_point.copy_(unpack_int32(stored, w.bits, out, 0));
          }};
}

// Static activations: one scale (float32 [1]) and, when asymmetric, one int8 zero point.
StoredTensor input_scale(const QuantizedLinearParams& p) {
  torch::Tensor scale = p.input_scale;
  return {"input_scale",
          torch::kFloat32,
          {1},
          [scale] { return scale.reshape({1}).to(torch::kFloat32); },
          [scale](const torch::Tensor& stored) { scale.copy_(stored.reshape(scale.sizes())); }};
}

StoredTensor input_zero_point(const QuantizedLinearParams& p) {
  torch::Tensor zero_point = p.input_zero_point;
  return {"input_zero_point",
          torch::kInt8,
          {1},
          [zero_point] { return zero_point.reshape({1}).to(torch::kInt8); },
          [zero_point](const torch::Tensor& stored) {
            zero_point.copy_(stored.reshape(zero_point.sizes()));
          }};
}

}  // namespace

std::string to_string(CompressedFormat format) {
  return format == CompressedFormat::kPackQuantized ? "pack-quantized" : "int-quantized";
}

CompressedFormat compressed_format(const LinearScheme& scheme) {
  return scheme.act == ActQuant::kNone ? CompressedFormat::kPackQuantized
                                       : CompressedFormat::kIntQuantized;
}

std::vector<StoredTensor> compressed_tensors_layout(const QuantizedLinearParams& p) {
  const QuantizedWeight& w = p.weight;
  PTQ_CHECK(w.defined() && w.shape.size() == 2, "quantized linear without a quantized weight");
  const CompressedFormat format = compressed_format(p.scheme());
  std::vector<StoredTensor> out;
  if (format == CompressedFormat::kPackQuantized) {
    out.push_back(packed_codes(w));
    out.push_back(weight_shape(w));
  } else {
    out.push_back(int8_codes(w));
  }
  out.push_back(weight_scale(w));
  if (!w.symmetric) out.push_back(weight_zero_point(w, format));
  if (p.act == ActQuant::kInt8PerTensorStatic) {
    PTQ_CHECK(p.input_scale.defined(),
              "static int8 activations without an input_scale (not calibrated)");
    out.push_back(input_scale(p));
    if (!p.act_symmetric) {
      PTQ_CHECK(p.input_zero_point.defined(),
                "asymmetric static int8 activations without an input_zero_point");
      out.push_back(input_zero_point(p));
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>> named_linears(
    const torch::nn::Module& root) {
  std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>> out;
  for (const auto& item : root.named_modules("", /*include_self=*/false))
    if (auto linear = std::dynamic_pointer_cast<LinearImpl>(item.value()))
      out.emplace_back(item.key(), linear);
  return out;
}

const std::vector<std::string>& quantized_tensor_suffixes() {
  static const std::vector<std::string> suffixes = {"weight_packed", "weight_shape",
                                                    "weight_scale",  "weight_zero_point",
                                                    "input_scale",   "input_zero_point"};
  return suffixes;
}

}  // namespace ptq
