// Per-tensor checksums of the safetensors files ptq writes, and their verification on load.
//
// Every shard that SafetensorsShardWriter writes (so every checkpoint save_checkpoint writes)
// carries in its "__metadata__" the key "ptq_crc32": a JSON object, as a string, mapping each
// tensor of that file to the CRC-32 of its bytes as 8 lowercase hex digits. CRC-32 is the IEEE
// 802.3 / zlib one (polynomial 0xEDB88320, reflected, initial and final XOR 0xFFFFFFFF): Python's
// zlib.crc32 over the same bytes gives the same value. It detects damage (a flipped bit, a
// truncated copy, a spliced file), not a deliberate forgery: whoever can change the data can change
// the header. docs/FORMAT.md and docs/ROBUSTNESS.md describe the rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "framework/safetensors.h"

namespace ptq {

inline constexpr const char* kChecksumMetadataKey = "ptq_crc32";

// CRC-32 of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

// The "ptq_crc32" value for these tensors (contiguous CPU tensors, as the writer holds them).
std::string tensor_checksums_metadata(const NamedTensors& tensors);

struct ChecksumReport {
  size_t files_verified = 0;    // files whose every tensor matched its recorded checksum
  size_t files_unverified = 0;  // files without "ptq_crc32" (written before checksums existed)
  size_t tensors_verified = 0;
  std::string first_unverified;  // a file without checksums, for the notice
};

// Checks every tensor of every file of `store` against the file's "ptq_crc32" (reading all the
// data). Throws ptq::Error naming the file and the tensor on a mismatch, on a tensor the record
// lacks or names that the file lacks, and on an unreadable record; when `required`, also on a file
// without a record. Files without a record are counted, not checked, otherwise.
ChecksumReport verify_tensor_checksums(const TensorStore& store, bool required);

}  // namespace ptq
