// CRC-32 (slicing-by-8) and the "ptq_crc32" metadata of safetensors files.
#include "framework/tensor_checksum.h"

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

#include "framework/error.h"
#include "framework/json_limits.h"

namespace ptq {
namespace {

// Eight 256-entry tables: table[0] is the classic byte-at-a-time table; table[k][b] is the CRC of
// byte b followed by k zero bytes, which lets the loop fold 8 input bytes per step (~3 GB/s).
using Tables = std::array<std::array<uint32_t, 256>, 8>;

const Tables& tables() {
  static const Tables t = [] {
    Tables out{};
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      out[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b)
      for (int k = 1; k < 8; ++k) out[k][b] = (out[k - 1][b] >> 8) ^ out[0][out[k - 1][b] & 0xff];
    return out;
  }();
  return t;
}

std::string hex(uint32_t value) { return fmt::format("{:08x}", value); }

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slicing-by-8 assumes little-endian");
  const Tables& t = tables();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  while (size >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

std::string tensor_checksums_metadata(const NamedTensors& tensors) {
  nlohmann::ordered_json record = nlohmann::ordered_json::object();
  for (const auto& [name, tensor] : tensors) {
    PTQ_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(),
              "tensor_checksums_metadata: tensor \"{}\" must be contiguous and on the CPU", name);
    record[name] = hex(crc32(tensor.data_ptr(), tensor.nbytes()));
  }
  return record.dump();
}

ChecksumReport verify_tensor_checksums(const TensorStore& store, bool required) {
  ChecksumReport report;
  for (const auto& file : store.files()) {
    const std::string path = file->path().string();
    const auto entry = file->metadata().find(kChecksumMetadataKey);
    if (entry == file->metadata().end()) {
      PTQ_CHECK(!required,
                "{}: the file has no \"{}\" checksums in its metadata, but the checkpoint's format "
                "version records them for every file; the file was replaced or its header edited "
                "after ptq wrote it",
                path, kChecksumMetadataKey);
      if (report.files_unverified++ == 0) report.first_unverified = path;
      continue;
    }
    const nlohmann::json record =
        parse_json_bounded(entry->second, path + ": metadata \"" + kChecksumMetadataKey + "\"");
    PTQ_CHECK(record.is_object(), "{}: metadata \"{}\" is not a JSON object of checksums", path,
              kChecksumMetadataKey);
    for (const auto& [name, value] : record.items())
      PTQ_CHECK(file->has(name),
                "{}: metadata \"{}\" records tensor \"{}\", which the file does not hold (tensors "
                "were removed or renamed after ptq wrote it)",
                path, kChecksumMetadataKey, name);
    const MappedRange mapped = file->mapped_range();
    for (const std::string& name : file->names()) {
      const auto it = record.find(name);
      PTQ_CHECK(it != record.end() && it->is_string(),
                "{}: tensor \"{}\" has no checksum in metadata \"{}\" (it was added after ptq "
                "wrote the file, or the record was edited)",
                path, name, kChecksumMetadataKey);
      const SafetensorsTensorInfo& info = file->info(name);
      const uint8_t* bytes = mapped.data + file->data_offset() + info.data_begin;
      const std::string computed = hex(crc32(bytes, info.nbytes()));
      PTQ_CHECK(computed == it->get<std::string>(),
                "{}: tensor \"{}\" is damaged: its bytes have CRC-32 {}, but ptq recorded {} when "
                "it wrote the file; the file was changed after it was written (a bad copy or "
                "disk?): re-copy or re-save the checkpoint",
                path, name, computed, it->get<std::string>());
      ++report.tensors_verified;
    }
    ++report.files_verified;
  }
  return report;
}

}  // namespace ptq
