// The safetensors dtype names, their element sizes, and the torch dtypes they map to.
#include <torch/version.h>

#include <string>

#include "framework/error.h"
#include "framework/safetensors.h"

namespace ptq {
namespace {

struct DtypeEntry {
  const char* name;
  size_t size;
  torch::ScalarType torch_dtype;  // Undefined: a safetensors dtype this LibTorch cannot hold
};

#define PTQ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// Every fixed-width dtype of the format. The unsigned 16/32/64-bit and the 8-bit float types exist
// only in newer LibTorch (8-bit floats from 2.1, unsigned from 2.3, E8M0 from 2.7) and the code
// also builds against 1.13: there they are known (a file holding them opens, and its other tensors
// are readable) but tensor() refuses them. Sub-byte types (F4, F6_*) are not byte-addressable and
// count as unknown.
constexpr DtypeEntry kDtypes[] = {
    {"BOOL", 1, torch::kBool},
    {"U8", 1, torch::kUInt8},
    {"I8", 1, torch::kInt8},
    {"I16", 2, torch::kInt16},
    {"I32", 4, torch::kInt32},
    {"I64", 8, torch::kInt64},
    {"F16", 2, torch::kFloat16},
    {"BF16", 2, torch::kBFloat16},
    {"F32", 4, torch::kFloat32},
    {"F64", 8, torch::kFloat64},
#if PTQ_TORCH_AT_LEAST(2, 3)
    {"U16", 2, torch::ScalarType::UInt16},
    {"U32", 4, torch::ScalarType::UInt32},
    {"U64", 8, torch::ScalarType::UInt64},
#else
    {"U16", 2, torch::ScalarType::Undefined},
    {"U32", 4, torch::ScalarType::Undefined},
    {"U64", 8, torch::ScalarType::Undefined},
#endif
#if PTQ_TORCH_AT_LEAST(2, 1)
    {"F8_E4M3", 1, torch::ScalarType::Float8_e4m3fn},
    {"F8_E5M2", 1, torch::ScalarType::Float8_e5m2},
#else
    {"F8_E4M3", 1, torch::ScalarType::Undefined},
    {"F8_E5M2", 1, torch::ScalarType::Undefined},
#endif
#if PTQ_TORCH_AT_LEAST(2, 8)  // (added in 2.7; 2.8 to stay on the safe side)
    {"F8_E8M0", 1, torch::ScalarType::Float8_e8m0fnu},
#else
    {"F8_E8M0", 1, torch::ScalarType::Undefined},
#endif
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const DtypeEntry& entry : kDtypes)
    if (name == entry.name) return &entry;
  return nullptr;
}

}  // namespace

torch::ScalarType safetensors_dtype_to_torch(const std::string& name) {
  const DtypeEntry* entry = find_dtype(name);
  PTQ_CHECK(
      entry != nullptr,
      "unknown safetensors dtype \"{}\", expected one of BOOL, U8, I8, I16, I32, I64, F16, BF16, "
      "F32, F64",
      name);
  PTQ_CHECK(entry->torch_dtype != torch::ScalarType::Undefined,
            "safetensors dtype \"{}\" has no equivalent in LibTorch {}.{} (needs a newer LibTorch)",
            name, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
  return entry->torch_dtype;
}

std::string torch_dtype_to_safetensors(torch::ScalarType dtype) {
  for (const DtypeEntry& entry : kDtypes)
    if (entry.torch_dtype == dtype && dtype != torch::ScalarType::Undefined) return entry.name;
  fail(
      "dtype {} cannot be stored in safetensors, expected one of bool, uint8, int8, int16, int32, "
      "int64, float16, bfloat16, float32, float64 (or uint16/32/64, float8_e4m3fn, float8_e5m2 on "
      "a newer "
      "LibTorch)",
      c10::toString(dtype));
}

size_t safetensors_dtype_size(const std::string& name) {
  const DtypeEntry* entry = find_dtype(name);
  return entry ? entry->size : 0;
}

}  // namespace ptq
