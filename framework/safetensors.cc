// Reading one .safetensors file: map it, parse and validate the header, hand out tensors that view
// the mapping.
#include "framework/safetensors.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "framework/error.h"
#include "framework/json_limits.h"

// The format is little-endian and we reinterpret its bytes in place.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace ptq {
namespace {

using json = nlohmann::json;

// a * b, or false on uint64 overflow (a hostile shape must not wrap around to a plausible size).
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// A JSON value as found, for "received X" parts of messages (short, one line): "an array [4]".
std::string describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  const char* article = value.is_object() || value.is_array() ? "an" : "a";
  return fmt::format("{} {} {}", article, value.type_name(), text);
}

// "'['" for a printable byte, "byte 0x00" otherwise.
std::string first_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", static_cast<unsigned>(byte));
}

// A non-negative integer that fits int64 (shape dims and offsets; nlohmann stores non-negative
// integer literals as number_unsigned).
bool is_count(const json& value) {
  return value.is_number_unsigned() &&
         value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

SafetensorsTensorInfo parse_entry(const std::string& file, const std::string& name,
                                  const json& entry, uint64_t data_size) {
  PTQ_CHECK(entry.is_object(),
            "{}: tensor \"{}\": entry is {}, expected an object with dtype, shape and data_offsets",
            file, name, describe(entry));
  SafetensorsTensorInfo info;
  info.name = name;

  auto dtype = entry.find("dtype");
  PTQ_CHECK(dtype != entry.end(), "{}: tensor \"{}\": missing \"dtype\"", file, name);
  PTQ_CHECK(dtype->is_string(),
            "{}: tensor \"{}\": \"dtype\" is {}, expected a string such as \"BF16\"", file, name,
            describe(*dtype));
  info.dtype_name = dtype->get<std::string>();
  const size_t element_size = safetensors_dtype_size(info.dtype_name);
  PTQ_CHECK(
      element_size != 0,
      "{}: tensor \"{}\": unknown dtype \"{}\", expected one of BOOL, U8, I8, I16, I32, I64, F16, "
      "BF16, F32, F64 (or U16, U32, U64, F8_E4M3, F8_E5M2, F8_E8M0)",
      file, name, info.dtype_name);
  try {
    info.dtype = safetensors_dtype_to_torch(info.dtype_name);
  } catch (const Error&) {
    // Known to the format, not to this LibTorch (F8_*, U16.. on 1.13): the file still opens, its
    // other tensors stay readable, and tensor() on this one explains.
    info.dtype = torch::ScalarType::Undefined;
  }

  auto shape = entry.find("shape");
  PTQ_CHECK(shape != entry.end(), "{}: tensor \"{}\": missing \"shape\"", file, name);
  PTQ_CHECK(shape->is_array(),
            "{}: tensor \"{}\": \"shape\" is {}, expected an array of non-negative integers", file,
            name, describe(*shape));
  uint64_t numel = 1;
  for (const json& dim : *shape) {
    PTQ_CHECK(is_count(dim), "{}: tensor \"{}\": shape {} holds {}, expected non-negative integers",
              file, name, shape->dump(), describe(dim));
    info.shape.push_back(dim.get<int64_t>());
    PTQ_CHECK(checked_mul(numel, dim.get<uint64_t>(), &numel),
              "{}: tensor \"{}\": shape {} overflows", file, name, shape->dump());
  }

  auto offsets = entry.find("data_offsets");
  PTQ_CHECK(offsets != entry.end(), "{}: tensor \"{}\": missing \"data_offsets\"", file, name);
  PTQ_CHECK(
      offsets->is_array() && offsets->size() == 2 && is_count((*offsets)[0]) &&
          is_count((*offsets)[1]),
      "{}: tensor \"{}\": \"data_offsets\" is {}, expected [begin, end] with non-negative integers",
      file, name, describe(*offsets));
  info.data_begin = (*offsets)[0].get<uint64_t>();
  info.data_end = (*offsets)[1].get<uint64_t>();
  PTQ_CHECK(info.data_begin <= info.data_end,
            "{}: tensor \"{}\": data_offsets [{}, {}] begin after they end", file, name,
            info.data_begin, info.data_end);
  PTQ_CHECK(
      info.data_end <= data_size,
      "{}: tensor \"{}\": data_offsets [{}, {}] run past the end of the data section ({} bytes)",
      file, name, info.data_begin, info.data_end, data_size);

  uint64_t nbytes = 0;
  PTQ_CHECK(
      checked_mul(numel, element_size, &nbytes) && nbytes == info.nbytes(),
      "{}: tensor \"{}\": shape {} of {} ({} bytes each) needs {} bytes, but data_offsets [{}, {}] "
      "span {}",
      file, name, shape_string(info.shape), info.dtype_name, element_size, numel * element_size,
      info.data_begin, info.data_end, info.nbytes());
  return info;
}

// The tensors must tile the data section: sorted by offset, each begins where the previous ends,
// the first at 0 and the last at the end. This rejects overlaps (two names sharing bytes) and, like
// the reference implementation ("metadata incomplete buffer"), gaps and trailing bytes: unexplained
// bytes are a sign of a damaged or hand-edited file.
void check_tiling(const std::string& file,
                  const std::map<std::string, SafetensorsTensorInfo>& tensors, uint64_t data_size) {
  std::vector<const SafetensorsTensorInfo*> sorted;
  for (const auto& item : tensors) sorted.push_back(&item.second);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return std::tie(a->data_begin, a->data_end, a->name) <
           std::tie(b->data_begin, b->data_end, b->name);
  });
  const SafetensorsTensorInfo* previous = nullptr;
  uint64_t covered = 0;
  for (const SafetensorsTensorInfo* info : sorted) {
    if (info->data_begin < covered)
      fail("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap", file, previous->name,
           previous->data_begin, previous->data_end, info->name, info->data_begin, info->data_end);
    if (info->data_begin > covered)
      fail(
          "{}: {} unused bytes in the data section before tensor \"{}\" (begins at {}, {}); "
          "tensors must "
          "cover the data section without gaps",
          file, info->data_begin - covered, info->name, info->data_begin,
          previous ? fmt::format("\"{}\" ends at {}", previous->name, covered)
                   : "the data section at 0");
    covered = info->data_end;
    previous = info;
  }
  PTQ_CHECK(covered == data_size,
            "{}: the data section has {} bytes but the tensors cover only {} (metadata incomplete "
            "buffer: "
            "trailing bytes after the last tensor)",
            file, data_size, covered);
}

}  // namespace

namespace detail {

json parse_json_rejecting_duplicates(const char* begin, const char* end, const std::string& source,
                                     const std::string& top_level_key_meaning) {
  // One key set per open object; nlohmann's callback parser reports each key before its value.
  std::vector<std::set<std::string>> open_objects;
  std::string top_level_key, duplicate, duplicate_owner;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    // Nesting is bounded before it can exhaust the stack of recursive consumers (json_limits.h).
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      fail("{}: JSON nested deeper than {} levels (corrupt or hostile input)", source,
           kMaxJsonDepth);
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second && duplicate.empty()) {
          duplicate = key;
          duplicate_owner = depth == 1 ? "" : top_level_key;
        }
        if (depth == 1) top_level_key = key;
        break;
      }
      default:
        break;
    }
    return true;
  };
  json value;
  try {
    value = json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", source, e.what());
  }
  if (!duplicate.empty()) {
    if (duplicate_owner.empty())
      fail("{}: duplicate {} \"{}\"", source, top_level_key_meaning, duplicate);
    fail("{}: duplicate key \"{}\" inside \"{}\"", source, duplicate, duplicate_owner);
  }
  return value;
}

}  // namespace detail

int64_t SafetensorsTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

// An mmap'ed file, unmapped when the last tensor viewing it (or the last SafetensorsFile) is gone.
struct SafetensorsFile::Mapping {
  uint8_t* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data != nullptr) ::munmap(data, size);
  }
};

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string file = path.string();
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  PTQ_CHECK(fd >= 0, "{}: cannot open safetensors file: {}", file, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file, expected a .safetensors file", file);
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail("{}: truncated safetensors file: {} bytes, expected at least 8 (the header length)", file,
         file_size);
  }
  // MAP_PRIVATE + PROT_WRITE: tensors handed out are writable torch tensors; a write lands in a
  // private copy-on-write page instead of segfaulting (PROT_READ only) or changing the file
  // (MAP_SHARED). Pages are read lazily, so opening a large checkpoint costs nothing until tensors
  // are touched.
  void* address = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  PTQ_CHECK(address != MAP_FAILED, "{}: cannot memory-map {} bytes: {}", file, file_size,
            std::strerror(mmap_errno));
  mapping_ = std::make_shared<Mapping>();
  mapping_->data = static_cast<uint8_t*>(address);
  mapping_->size = file_size;

  uint64_t header_size = 0;
  std::memcpy(&header_size, mapping_->data, 8);
  // Checked before touching the header, so garbage (a text file, a wrong format) cannot make us
  // allocate or scan gigabytes.
  PTQ_CHECK(
      header_size <= kSafetensorsMaxHeaderBytes,
      "{}: header length {} bytes exceeds the limit of {} (corrupt, or not a safetensors file)",
      file, header_size, kSafetensorsMaxHeaderBytes);
  PTQ_CHECK(header_size <= file_size - 8,
            "{}: header length {} bytes runs past the end of the file ({} bytes, so at most {} are "
            "available)",
            file, header_size, file_size, file_size - 8);
  data_offset_ = 8 + header_size;
  const uint64_t data_size = file_size - data_offset_;

  const char* header_begin = reinterpret_cast<const char*>(mapping_->data + 8);
  // Like the reference, the header must start with '{' exactly (no leading whitespace).
  PTQ_CHECK(header_size > 0 && header_begin[0] == '{',
            "{}: header is not a JSON object (expected it to start with '{{', found {})", file,
            header_size == 0 ? std::string("an empty header") : first_byte(header_begin[0]));
  json header = detail::parse_json_rejecting_duplicates(header_begin, header_begin + header_size,
                                                        file + ": header", "tensor name");
  PTQ_CHECK(header.is_object(), "{}: header is a {}, expected a JSON object", file,
            header.type_name());

  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      PTQ_CHECK(item.value().is_object(),
                "{}: \"__metadata__\" is {}, expected an object of strings", file,
                describe(item.value()));
      for (const auto& entry : item.value().items()) {
        PTQ_CHECK(entry.value().is_string(),
                  "{}: \"__metadata__\" key \"{}\" holds {}, expected a string", file, entry.key(),
                  describe(entry.value()));
        metadata_[entry.key()] = entry.value().get<std::string>();
      }
      continue;
    }
    tensors_[item.key()] = parse_entry(file, item.key(), item.value(), data_size);
  }
  check_tiling(file, tensors_, data_size);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& item : tensors_) names.push_back(item.first);
  return names;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  PTQ_CHECK(it != tensors_.end(), "{}: no tensor \"{}\" (the file holds {} tensors)",
            path_.string(), name, tensors_.size());
  return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsTensorInfo& info = this->info(name);
  PTQ_CHECK(info.dtype != torch::ScalarType::Undefined,
            "{}: tensor \"{}\" has dtype {}, which this LibTorch build cannot represent",
            path_.string(), name, info.dtype_name);
  const auto options = torch::TensorOptions().dtype(info.dtype).device(torch::kCPU);
  uint8_t* data = mapping_->data + data_offset_ + info.data_begin;
  const size_t element_size = c10::elementSize(info.dtype);
  if (reinterpret_cast<uintptr_t>(data) % element_size != 0) {
    // Misaligned data (legal in the format when a writer orders, say, an odd-length BF16 tensor
    // before an F32 one; our writer never does). Reading an F32 through a misaligned pointer is
    // undefined behaviour in C++ and breaks kernels that assume natural alignment, so hand out an
    // aligned copy.
    torch::Tensor copy = torch::empty(info.shape, options);
    if (info.nbytes() > 0) std::memcpy(copy.data_ptr(), data, info.nbytes());
    return copy;
  }
  // The deleter owns a reference to the mapping: the view keeps the file mapped for as long as
  // torch keeps its storage alive, wherever the tensor travels.
  std::shared_ptr<Mapping> keep_alive = mapping_;
  return torch::from_blob(
      data, info.shape, [keep_alive](void*) {}, options);
}

void SafetensorsFile::release_pages(const std::string& name) const {
  const SafetensorsTensorInfo& info = this->info(name);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(mapping_->data + data_offset_ + info.data_begin);
  const uintptr_t end = begin + info.nbytes();
  const uintptr_t first = (begin + page - 1) / page * page;  // pages wholly inside [begin, end)
  const uintptr_t last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedRange SafetensorsFile::mapped_range() const {
  return MappedRange{mapping_->data, mapping_->size};
}

}  // namespace ptq
