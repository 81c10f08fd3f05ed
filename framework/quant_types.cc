#include "framework/quant_types.h"

#include "framework/error.h"

namespace ptq {

int bits(QuantDtype dtype) {
  switch (dtype) {
    case QuantDtype::kNone: return 0;
    case QuantDtype::kInt8: return 8;
    case QuantDtype::kInt4: return 4;
    case QuantDtype::kInt3: return 3;
  }
  fail("QuantDtype: invalid enum value {}", static_cast<int>(dtype));
}

QuantDtype quant_dtype_from_bits(int bits) {
  switch (bits) {
    case 0: return QuantDtype::kNone;
    case 8: return QuantDtype::kInt8;
    case 4: return QuantDtype::kInt4;
    case 3: return QuantDtype::kInt3;
    default: fail("quantization bits: got {}, expected 0 (none), 3, 4 or 8", bits);
  }
}

std::string to_string(QuantDtype dtype) {
  switch (dtype) {
    case QuantDtype::kNone: return "none";
    case QuantDtype::kInt8: return "int8";
    case QuantDtype::kInt4: return "int4";
    case QuantDtype::kInt3: return "int3";
  }
  return "invalid";
}

BlockSize block_size(int64_t group_size, int64_t out_features, int64_t in_features) {
  PTQ_CHECK(out_features > 0 && in_features > 0, "block size: weight shape [{}, {}] must be non-empty",
            out_features, in_features);
  if (group_size == kPerTensor) return {out_features, in_features};
  if (group_size == kPerChannel) return {1, in_features};
  PTQ_CHECK(group_size > 0,
            "group size: got {}, expected a positive group size, 0 (per-channel) or -1 (per-tensor)", group_size);
  PTQ_CHECK(in_features % group_size == 0,
            "group size {} does not divide in_features {}: choose a divisor of {} (or 0 for per-channel)",
            group_size, in_features, in_features);
  return {1, group_size};
}

int64_t num_groups(int64_t group_size, int64_t in_features) {
  return in_features / block_size(group_size, 1, in_features).cols;
}

std::string granularity_name(int64_t group_size) {
  if (group_size == kPerTensor) return "per-tensor";
  if (group_size == kPerChannel) return "per-channel";
  return "g" + std::to_string(group_size);
}

std::string to_string(PackingFormat format) {
  switch (format) {
    case PackingFormat::kInt8Plain: return "int8-plain";
    case PackingFormat::kInt4PackedInt32: return "int4-packed-int32";
    case PackingFormat::kInt3PackedInt32: return "int3-packed-int32";
  }
  return "invalid";
}

PackingFormat default_packing(int bits) {
  switch (bits) {
    case 8: return PackingFormat::kInt8Plain;
    case 4: return PackingFormat::kInt4PackedInt32;
    case 3: return PackingFormat::kInt3PackedInt32;
    default: fail("packing: no storage format for {}-bit weights, expected 3, 4 or 8", bits);
  }
}

int packing_bits(PackingFormat format) {
  switch (format) {
    case PackingFormat::kInt8Plain: return 8;
    case PackingFormat::kInt4PackedInt32: return 4;
    case PackingFormat::kInt3PackedInt32: return 3;
  }
  fail("PackingFormat: invalid enum value {}", static_cast<int>(format));
}

int64_t pack_factor(PackingFormat format) {
  return format == PackingFormat::kInt8Plain ? 1 : 32 / packing_bits(format);
}

}  // namespace ptq
