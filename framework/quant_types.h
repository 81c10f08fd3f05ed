// The vocabulary of quantization: integer dtypes and their ranges, granularity expressed as a block
// size, and the packing formats of stored weights. docs/QUANTIZATION.md gives the formulas.
//
// Integer range convention (compressed-tensors' calculate_range, which vLLM loads): every b-bit code
// is stored SIGNED, q in [-2^(b-1), 2^(b-1) - 1], for symmetric and asymmetric quantization alike.
// Asymmetric zero points live in the same signed range. The unsigned view used by the int32 packing
// (and by AutoAWQ/GPTQ-style kernels) is q + 2^(b-1), in [0, 2^b - 1].
#pragma once

#include <cstdint>
#include <string>

namespace ptq {

enum class QuantDtype { kNone, kInt8, kInt4, kInt3 };

// 0 for kNone.
int bits(QuantDtype dtype);
// 0 -> kNone, 8 -> kInt8, 4 -> kInt4, 3 -> kInt3; anything else throws naming the value.
QuantDtype quant_dtype_from_bits(int bits);
std::string to_string(QuantDtype dtype);  // "none", "int8", "int4", "int3"

// Signed code range of a b-bit integer (b in 1..8): [-2^(b-1), 2^(b-1) - 1]. Symmetric quantization
// uses the full range, -2^(b-1) included (int8: -128..127, int4: -8..7), as compressed-tensors does.
constexpr int64_t qmin(int bits) { return -(int64_t{1} << (bits - 1)); }
constexpr int64_t qmax(int bits) { return (int64_t{1} << (bits - 1)) - 1; }
// The unsigned view of the same codes: [0, 2^b - 1]; unsigned = signed + unsigned_offset(bits).
constexpr int64_t unsigned_offset(int bits) { return int64_t{1} << (bits - 1); }
constexpr int64_t unsigned_qmax(int bits) { return (int64_t{1} << bits) - 1; }

// ---- Granularity as a block size -------------------------------------------------------------------
// Every block of block.rows x block.cols weights shares one scale (and zero point). Per-tensor,
// per-channel and per-group quantization are the same code with different blocks:
//   per-tensor   {out, in}      group_size == kPerTensor
//   per-channel  {1, in}        group_size == kPerChannel
//   per-group g  {1, g}         group_size == g (any g >= 1 that divides in_features)
// Configurations and QuantizedWeight carry the single integer `group_size`; block_size() resolves it.
inline constexpr int64_t kPerChannel = 0;
inline constexpr int64_t kPerTensor = -1;

struct BlockSize {
  int64_t rows = 1;
  int64_t cols = 1;
};

// The block of a [out_features, in_features] weight; throws when group_size is neither kPerTensor,
// kPerChannel nor a positive divisor of in_features (the message names both numbers).
BlockSize block_size(int64_t group_size, int64_t out_features, int64_t in_features);
// Number of scale columns: 1 for per-tensor and per-channel, in_features / g for groups.
int64_t num_groups(int64_t group_size, int64_t in_features);
// "per-tensor", "per-channel", "g128".
std::string granularity_name(int64_t group_size);

// ---- Packing formats of stored weight codes --------------------------------------------------------
enum class PackingFormat {
  // int8 [out, in], one signed code per byte (8-bit weights).
  kInt8Plain,
  // compressed-tensors "pack-quantized" with 4-bit codes: int32 [out, ceil(in / 8)]. Code j of a row
  // goes to word j / 8, bits 4*(j % 8) .. 4*(j % 8) + 3 (first code in the least significant nibble),
  // stored unsigned (q + 8). Rows are zero-padded (code -8) to a multiple of 8.
  kInt4PackedInt32,
  // The same layout with 3-bit codes: 10 codes per int32 (pack factor 32 / 3), bits 30..31 unused,
  // stored unsigned (q + 4). This is what compressed-tensors' pack_to_int32(num_bits=3) writes.
  kInt3PackedInt32,
};

std::string to_string(PackingFormat format);  // "int8-plain", "int4-packed-int32", "int3-packed-int32"
// The format quantize_weight() produces for b-bit codes: 8 -> kInt8Plain, 4 -> kInt4PackedInt32,
// 3 -> kInt3PackedInt32.
PackingFormat default_packing(int bits);
// Codes per storage element: 1 for kInt8Plain, 32 / bits for the int32 formats.
int64_t pack_factor(PackingFormat format);
// Bits of the codes a format holds (8, 4, 3).
int packing_bits(PackingFormat format);

}  // namespace ptq
