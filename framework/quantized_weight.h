// The one quantized-weight value type of ptq (torchao's Int4Tensor idea: codes, scale, zero point,
// block size and original shape travel together), the weight quantizer, fake quantization, and the
// compressed-tensors int32 packing.
//
// Numerics (docs/QUANTIZATION.md has the derivations; all computed in float32 whatever w's dtype):
//   block min/max:  lo = min(min(block), 0) * clip,  hi = max(max(block), 0) * clip   (0 stays exact)
//   symmetric:      scale = max(|lo|, hi) / ((qmax - qmin) / 2)  = absmax / 127.5 (int8), / 7.5 (int4),
//                   / 3.5 (int3); zero_point = 0 (not stored)
//   asymmetric:     scale = (hi - lo) / (qmax - qmin)            = (hi - lo) / (2^b - 1)
//                   zero_point = round(clamp(qmin - lo / scale, qmin, qmax))   (signed, int8)
//   scale == 0 (an all-zero block) is replaced by float32 epsilon, so codes are 0 / zero_point.
//   quantize:       q = clamp(round(w / scale + zero_point), qmin, qmax)   (true division)
//   dequantize:     w' = (q - zero_point) * scale
// These are compressed-tensors' calculate_qparams / _quantize / _dequantize formulas (checked against
// compressed_tensors/quantization/utils/helpers.py and lifecycle/forward.py), so llm-compressor
// checkpoints and ours agree code for code. round() is torch::round: round half to even (the IEEE
// default, what PyTorch and compressed-tensors use). The signed zero point equals the unsigned
// round(-lo / scale) minus 2^(b-1), i.e. the usual [0, 2^b - 1] zero point shifted into the signed range.
// With these scales the largest |w| of a symmetric block maps to +-(2^(b-1) - 0.5): the negative end
// rounds to qmin, the positive end clamps to qmax, both within half a step, so every element
// (clip = 1) is reproduced within scale / 2.
#pragma once

#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

#include "framework/quant_types.h"

namespace ptq {

// How to quantize one weight matrix [out_features, in_features].
struct WeightQuantSpec {
  int bits = 8;                      // 8, 4 or 3
  int64_t group_size = kPerChannel;  // kPerChannel (0), kPerTensor (-1) or any g >= 1 dividing in_features
  bool symmetric = true;
  // Clipping (AWQ clip search, MSE clipping): the block's lo/hi are multiplied by this ratio before the
  // scale is computed (llm-compressor's MSE observer shrinks min and max the same way). Values outside
  // the shrunk range clamp to qmin/qmax. clip_ratio applies to every block; clip_ratio_per_group, when
  // defined, is a float tensor broadcastable to [out / block.rows, n_groups] (i.e. [out, n_groups]
  // for per-channel and per-group) and multiplies on top.
  double clip_ratio = 1.0;
  torch::Tensor clip_ratio_per_group;
  // Precomputed parameters (GPTQ computes them itself): scale float [out, n_groups]; zero_point
  // [out, n_groups] integer-valued (any dtype), signed convention, required iff !symmetric. When scale
  // is defined nothing is derived from w's range and the clip ratios must be left at their defaults.
  torch::Tensor scale;
  torch::Tensor zero_point;

  std::string to_string() const;  // "int4 g128 asym"
};

// A quantized weight. Shapes (out = shape[0], in = shape[1], G = n_groups()):
//   data        kInt8Plain:        int8  [out, in], signed codes
//               kInt4PackedInt32:  int32 [out, ceil(in / 8)]   (compressed-tensors pack-quantized)
//               kInt3PackedInt32:  int32 [out, ceil(in / 10)]
//   scale       float32 [out, G]; G = 1 for per-channel and per-tensor (per-tensor repeats one value in
//               every row, so kernels see one shape; the checkpoint writer may store it as [1])
//   zero_point  int8 [out, G], signed (compressed-tensors convention), undefined when symmetric
// Element (r, c) belongs to group c / group_cols(); w'(r, c) = (q(r, c) - zero_point(r, g)) * scale(r, g).
struct QuantizedWeight {
  torch::Tensor data;
  torch::Tensor scale;
  torch::Tensor zero_point;
  int bits = 8;
  int64_t group_size = kPerChannel;  // as in WeightQuantSpec
  bool symmetric = true;
  std::vector<int64_t> shape;        // original [out_features, in_features]
  PackingFormat packing = PackingFormat::kInt8Plain;

  int64_t out_features() const { return shape.at(0); }
  int64_t in_features() const { return shape.at(1); }
  int64_t n_groups() const { return num_groups(group_size, in_features()); }
  int64_t group_cols() const { return block_size(group_size, out_features(), in_features()).cols; }
  bool defined() const { return data.defined(); }

  // Signed codes as int8 [out, in] (unpacks the int32 formats; a view-free copy for packed data).
  torch::Tensor unpacked_int8() const;
  // (q - zero_point) * scale as [out, in]: computed in float32, then cast to `dtype`.
  torch::Tensor dequantize(torch::ScalarType dtype = torch::kFloat32) const;
  // Bytes of data + scale + zero_point as stored (what a kernel keeps resident).
  int64_t weight_bytes() const;
  // Throws ptq::Error naming the field when shapes, dtypes or ranges disagree with the layout above.
  void validate() const;
  // The same weight with every tensor on `device`.
  QuantizedWeight to(const torch::Device& device) const;
  // "int4 g128 asym int4-packed-int32 [4096, 4096]".
  std::string describe() const;
};

// Quantizes w (float/half/bfloat16 [out, in], any device) as spec says; data is packed per
// default_packing(spec.bits). Errors name the offending field and what was expected.
QuantizedWeight quantize_weight(const torch::Tensor& w, const WeightQuantSpec& spec);

// quantize then dequantize, returned in w's dtype and device (calibration losses, AWQ/GPTQ). Equal to
// quantize_weight(w, spec).dequantize(w.scalar_type()) but skips the packing.
torch::Tensor fake_quantize_weight(const torch::Tensor& w, const WeightQuantSpec& spec);

// The scale/zero-point formulas above applied elementwise to block ranges lo, hi (same shape, float):
// the building block of quantize_weight, exposed so GPTQ/AWQ derive parameters exactly the same way.
// zero_point is undefined when symmetric, else float holding integers in [qmin, qmax].
struct QParams {
  torch::Tensor scale;
  torch::Tensor zero_point;
};
QParams compute_qparams(const torch::Tensor& lo, const torch::Tensor& hi, int bits, bool symmetric);

// clamp(round(x / scale + zero_point), qmin, qmax) in float32 (x, scale, zero_point broadcastable;
// zero_point may be undefined); the result holds integers, in float32.
torch::Tensor quantize_codes(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& zero_point,
                             int bits);

// t / d with IEEE division on every device. (On CUDA, PyTorch turns division by a host scalar into
// multiplication by its reciprocal, which can differ in the last bit; dividing by a tensor of d does not.)
// Every scale formula above uses it, so CPU and CUDA compute identical scales and codes.
torch::Tensor div_exact(const torch::Tensor& t, double d);

// ---- compressed-tensors int32 packing --------------------------------------------------------------
// pack_int32: signed b-bit codes (int8, 2-D, values in [qmin, qmax]) -> int32. Along packed_dim
// (1 = columns, the weight layout; 0 = rows, how compressed-tensors packs asymmetric zero points),
// every run of 32 / bits codes fills one int32, the first code in the least significant bits, each
// code stored unsigned (q + 2^(b-1)); the packed dimension is zero-padded (unsigned 0) to a multiple
// of 32 / bits. The int32 holds the bit pattern (words with the top bit set are negative).
torch::Tensor pack_int32(const torch::Tensor& codes, int bits, int64_t packed_dim = 1);
// Inverse of pack_int32; `original_size` is the unpadded length of the packed dimension.
torch::Tensor unpack_int32(const torch::Tensor& packed, int bits, int64_t original_size, int64_t packed_dim = 1);
// 4-bit shorthands (8 nibbles per int32, little-endian nibble order).
inline torch::Tensor pack_int4(const torch::Tensor& codes) { return pack_int32(codes, 4, 1); }
inline torch::Tensor unpack_int4(const torch::Tensor& packed, int64_t in_features) {
  return unpack_int32(packed, 4, in_features, 1);
}

}  // namespace ptq
