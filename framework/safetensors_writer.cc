// Writing safetensors: one file (write_safetensors) or a sharded checkpoint
// (SafetensorsShardWriter), both through the same steps: prepare each tensor, write a temporary
// file, fsync, rename.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <functional>
#include <sstream>

#include "framework/atomic_folder.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/safetensors.h"
#include "framework/tensor_checksum.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace ptq {
namespace fs = std::filesystem;
namespace {

// A tensor as it will be written: contiguous CPU memory with a safetensors dtype.
torch::Tensor prepare_tensor(const std::string& where, const std::string& name,
                             const torch::Tensor& tensor) {
  PTQ_CHECK(!name.empty() && name != "__metadata__", "{}: tensor name \"{}\" is reserved or empty",
            where, name);
  PTQ_CHECK(tensor.defined(), "{}: tensor \"{}\" is undefined", where, name);
  if (tensor.layout() != torch::kStrided) {
    std::ostringstream layout;
    layout << tensor.layout();
    fail("{}: tensor \"{}\" has layout {}, expected a dense (strided) tensor", where, name,
         layout.str());
  }
  try {
    torch_dtype_to_safetensors(tensor.scalar_type());
  } catch (const Error& e) {
    fail("{}: tensor \"{}\": {}", where, name, e.what());
  }
  return tensor.detach().to(torch::kCPU).contiguous();
}

void write_all(int fd, const void* data, size_t size, const fs::path& path) {
  auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call; loop for large tensors and partial writes.
    const ssize_t written = ::write(fd, bytes, std::min<size_t>(size, size_t{1} << 30));
    if (written < 0 && errno == EINTR) continue;
    PTQ_CHECK(written > 0, "{}: write failed: {}", path.string(), std::strerror(errno));
    bytes += written;
    size -= static_cast<size_t>(written);
  }
}

// Where a tensor's bytes come from: memory, or `size` bytes at `offset` of a file (add_from_file).
struct BodyPart {
  const torch::Tensor* tensor = nullptr;
  fs::path file;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Calls `sink` with consecutive chunks of `size` bytes at `offset` of `path` (pread into a small
// buffer: the bytes never all sit in memory, and no mapping's pages stay resident).
void read_file_range(const fs::path& path, uint64_t offset, uint64_t size,
                     const std::function<void(const uint8_t*, size_t)>& sink) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PTQ_CHECK(fd >= 0, "{}: cannot open: {}", path.string(), std::strerror(errno));
  std::vector<uint8_t> buffer(std::min<uint64_t>(size, uint64_t{4} << 20));
  try {
    while (size > 0) {
      const ssize_t got = ::pread(fd, buffer.data(), std::min<uint64_t>(size, buffer.size()), static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      PTQ_CHECK(got > 0, "{}: read failed at byte {}: {}", path.string(), offset,
                got == 0 ? std::string("unexpected end of file") : std::string(std::strerror(errno)));
      sink(buffer.data(), static_cast<size_t>(got));
      offset += static_cast<uint64_t>(got);
      size -= static_cast<uint64_t>(got);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

// Writes `head` then each tensor's bytes to `path` (created or truncated), fsyncs and closes it. On
// any failure removes `path` and throws. The only place that writes file contents.
void write_file(const fs::path& path, const std::string& head, const std::vector<BodyPart>& body) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PTQ_CHECK(fd >= 0, "{}: cannot create: {}", path.string(), std::strerror(errno));
  try {
    write_all(fd, head.data(), head.size(), path);
    for (const BodyPart& part : body) {
      if (part.tensor) {
        if (part.tensor->nbytes() > 0) write_all(fd, part.tensor->data_ptr(), part.tensor->nbytes(), path);
      } else {
        read_file_range(part.file, part.offset, part.size,
                        [&](const uint8_t* data, size_t size) { write_all(fd, data, size, path); });
      }
    }
    PTQ_CHECK(::fsync(fd) == 0, "{}: fsync failed: {}", path.string(), std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int close_errno = errno;
    ::unlink(path.c_str());
    fail("{}: close failed: {}", path.string(), std::strerror(close_errno));
  }
}

// Writes one safetensors file with these (prepared) tensors to `path`. Data order: the given order,
// stably sorted by element size, largest first. The header is padded to a multiple of 8 bytes, so
// the data section starts 8-aligned, and every size of a larger type is a multiple of each smaller
// one: every tensor then starts at a multiple of its own element size (the reference sorts by
// alignment, then by name, for the same reason).
// `from_files` maps a tensor name to where its bytes lie in a file (the tensor in `tensors` is then
// only a stand-in of the right dtype and shape).
void write_safetensors_file(const fs::path& path, const NamedTensors& tensors,
                            const std::map<std::string, std::string>& metadata,
                            const std::map<std::string, BodyPart>& from_files = {}) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].second.element_size() > tensors[b].second.element_size();
  });

  // ordered_json keeps the header in data order ("__metadata__" first), which makes it readable.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<BodyPart> body;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, tensor] = tensors[i];
    const uint64_t nbytes = tensor.nbytes();
    header[name] = {{"dtype", torch_dtype_to_safetensors(tensor.scalar_type())},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", nlohmann::ordered_json::array({offset, offset + nbytes})}};
    offset += nbytes;
    const auto file = from_files.find(name);
    if (file != from_files.end()) {
      body.push_back(file->second);
    } else {
      BodyPart part;
      part.tensor = &tensor;
      body.push_back(part);
    }
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // names or metadata that are not valid UTF-8
    fail("{}: cannot write the header: {}", path.string(), e.what());
  }
  text.append((8 - text.size() % 8) % 8,
              ' ');  // pad with spaces to a multiple of 8, as the reference
  PTQ_CHECK(text.size() <= kSafetensorsMaxHeaderBytes,
            "{}: header of {} bytes exceeds the limit of {} that readers enforce (too many tensors "
            "in one "
            "file: use SafetensorsShardWriter with smaller shards)",
            path.string(), text.size(), kSafetensorsMaxHeaderBytes);
  const uint64_t header_size = text.size();
  std::string head(8, '\0');
  std::memcpy(head.data(), &header_size, 8);
  write_file(path, head + text, body);
}

// model-00001-of-00003.safetensors: the Hugging Face shard name.
std::string shard_name(size_t index, size_t count) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index, count);
}

bool is_shard_name(const std::string& name) {
  if (name.size() != std::string("model-00001-of-00001.safetensors").size()) return false;
  if (name.compare(0, 6, "model-") != 0 || name.compare(11, 4, "-of-") != 0 ||
      name.compare(20, 12, ".safetensors") != 0)
    return false;
  auto digits = [&](size_t from) {
    return std::all_of(name.begin() + from, name.begin() + from + 5,
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(6) && digits(15);
}

}  // namespace

void write_safetensors(const fs::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  NamedTensors prepared;
  prepared.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    PTQ_CHECK(seen.insert(name).second, "{}: tensor \"{}\" is given twice", path.string(), name);
    prepared.emplace_back(name, prepare_tensor(path.string(), name, tensor));
  }
  write_file_atomically(path, [&](const fs::path& temporary) { write_safetensors_file(temporary, prepared, metadata); });
}

SafetensorsShardWriter::SafetensorsShardWriter(fs::path folder, uint64_t max_shard_bytes,
                                               std::map<std::string, std::string> metadata)
    : folder_(std::move(folder)),
      max_shard_bytes_(max_shard_bytes),
      metadata_(std::move(metadata)) {
  PTQ_CHECK(max_shard_bytes_ > 0, "{}: max_shard_bytes must be positive", folder_.string());
  metadata_.emplace("format", "pt");
  std::error_code error;
  fs::create_directories(folder_, error);
  PTQ_CHECK(!error && fs::is_directory(folder_), "{}: cannot create the checkpoint folder: {}",
            folder_.string(), error ? error.message() : "a file of that name exists");
}

SafetensorsShardWriter::~SafetensorsShardWriter() {
  if (!finished_) remove_temporaries();
}

void SafetensorsShardWriter::add(const std::string& name, const torch::Tensor& tensor) {
  PTQ_CHECK(!finished_, "{}: add(\"{}\") after finish()", folder_.string(), name);
  PTQ_CHECK(names_.count(name) == 0, "{}: tensor \"{}\" was already added", folder_.string(), name);
  torch::Tensor prepared = prepare_tensor(folder_.string(), name, tensor);
  const uint64_t nbytes = prepared.nbytes();
  // Close the current shard first when this tensor would take it past the limit (a tensor larger
  // than the limit thus starts a shard of its own), as transformers' shard splitting does.
  if (!pending_.empty() && pending_bytes_ + nbytes > max_shard_bytes_) flush_shard();
  pending_.emplace_back(name, std::move(prepared));
  pending_bytes_ += nbytes;
  names_.insert(name);
  total_bytes_ += nbytes;
  if (pending_bytes_ >= max_shard_bytes_) flush_shard();  // full: release the memory now
}

void SafetensorsShardWriter::add_from_file(const std::string& name, const std::shared_ptr<const SafetensorsFile>& file,
                                           const std::string& source_name) {
  PTQ_CHECK(!finished_, "{}: add_from_file(\"{}\") after finish()", folder_.string(), name);
  PTQ_CHECK(file != nullptr, "{}: add_from_file(\"{}\"): no file", folder_.string(), name);
  PTQ_CHECK(!name.empty() && name != "__metadata__", "{}: tensor name \"{}\" is reserved or empty",
            folder_.string(), name);
  PTQ_CHECK(names_.count(name) == 0, "{}: tensor \"{}\" was already added", folder_.string(), name);
  const SafetensorsTensorInfo& info = file->info(source_name);
  PTQ_CHECK(info.dtype != torch::ScalarType::Undefined, "{}: tensor \"{}\" of {} has dtype {}, which this LibTorch cannot represent",
            folder_.string(), source_name, file->path().string(), info.dtype_name);
  FileSource source{file, source_name, 0};
  bool recorded = false;
  const auto record = file->metadata().find(kChecksumMetadataKey);
  if (record != file->metadata().end()) {
    const nlohmann::json crcs = nlohmann::json::parse(record->second, nullptr, /*allow_exceptions=*/false);
    const auto it = crcs.is_object() ? crcs.find(source_name) : crcs.end();
    if (it != crcs.end() && it->is_string()) {
      source.crc = static_cast<uint32_t>(std::stoul(it->get<std::string>(), nullptr, 16));
      recorded = true;
    }
  }
  if (!recorded)
    read_file_range(file->path(), file->data_offset() + info.data_begin, info.nbytes(),
                    [&](const uint8_t* data, size_t size) { source.crc = crc32(data, size, source.crc); });
  // A stand-in with the header's dtype and shape: one stored element, stride 0.
  torch::Tensor stand_in = torch::zeros({1}, torch::TensorOptions().dtype(info.dtype));
  stand_in = info.shape.empty() ? stand_in.reshape({}) : stand_in.expand(info.shape);
  const uint64_t nbytes = info.nbytes();
  PTQ_CHECK(nbytes == static_cast<uint64_t>(stand_in.numel()) * stand_in.element_size(),
            "{}: tensor \"{}\" of {}: {} bytes for its shape and dtype", folder_.string(), source_name,
            file->path().string(), nbytes);
  if (!pending_.empty() && pending_bytes_ + nbytes > max_shard_bytes_) flush_shard();
  pending_.emplace_back(name, std::move(stand_in));
  file_sources_[name] = std::move(source);
  pending_bytes_ += nbytes;
  names_.insert(name);
  total_bytes_ += nbytes;
  if (pending_bytes_ >= max_shard_bytes_) flush_shard();
}

void SafetensorsShardWriter::flush_shard() {
  // The final name needs the shard count, known only at finish(): numbered temporaries until then.
  const fs::path temporary =
      temporary_file_path(folder_ / fmt::format("model-{:05d}.safetensors", temp_shards_.size() + 1));
  // Each shard records the CRC-32 of its own tensors (framework/tensor_checksum.h), in the same
  // form as tensor_checksums_metadata().
  std::map<std::string, std::string> metadata = metadata_;
  std::map<std::string, BodyPart> from_files;
  nlohmann::ordered_json checksums = nlohmann::ordered_json::object();
  for (const auto& [name, tensor] : pending_) {
    const auto source = file_sources_.find(name);
    if (source == file_sources_.end()) {
      checksums[name] = fmt::format("{:08x}", crc32(tensor.data_ptr(), tensor.nbytes()));
      continue;
    }
    const SafetensorsFile& file = *source->second.file;
    const SafetensorsTensorInfo& info = file.info(source->second.name);
    BodyPart part;
    part.file = file.path();
    part.offset = file.data_offset() + info.data_begin;
    part.size = info.nbytes();
    from_files[name] = part;
    checksums[name] = fmt::format("{:08x}", source->second.crc);
  }
  metadata[kChecksumMetadataKey] = checksums.dump();
  write_safetensors_file(temporary, pending_, metadata, from_files);
  for (const auto& item : pending_) file_sources_.erase(item.first);
  temp_shards_.push_back(temporary);
  std::vector<std::string> names;
  for (const auto& item : pending_) names.push_back(item.first);
  shard_names_.push_back(std::move(names));
  pending_.clear();
  pending_bytes_ = 0;
}

std::vector<fs::path> SafetensorsShardWriter::finish() {
  PTQ_CHECK(!finished_, "{}: finish() called twice", folder_.string());
  if (!pending_.empty() || temp_shards_.empty())
    flush_shard();  // an empty checkpoint is one empty file
  const size_t count = temp_shards_.size();
  std::vector<fs::path> written;
  std::set<std::string> keep;
  if (count == 1) {
    written.push_back(folder_ / kSafetensorsSingleFile);
  } else {
    for (size_t i = 0; i < count; ++i) written.push_back(folder_ / shard_name(i + 1, count));
  }
  for (const auto& path : written) keep.insert(path.filename().string());

  fs::path index_temporary;
  if (count > 1) {
    // Same shape and formatting as transformers' index (indent 2, keys sorted).
    nlohmann::json index;
    index["metadata"]["total_size"] = total_bytes_;
    index["weight_map"] = nlohmann::json::object();
    for (size_t i = 0; i < count; ++i)
      for (const auto& name : shard_names_[i])
        index["weight_map"][name] = written[i].filename().string();
    index_temporary = temporary_file_path(folder_ / kSafetensorsIndexFile);
    write_file(index_temporary, index.dump(2) + "\n", {});
  }
  try {
    // Shards first, the index last: a reader that finds the new index finds every shard it names.
    for (size_t i = 0; i < count; ++i) commit_file(temp_shards_[i], written[i]);
    if (count > 1) {
      commit_file(index_temporary, folder_ / kSafetensorsIndexFile);
      written.push_back(folder_ / kSafetensorsIndexFile);
      keep.insert(kSafetensorsIndexFile);
    }
  } catch (...) {
    if (!index_temporary.empty()) ::unlink(index_temporary.c_str());
    throw;  // the destructor removes the remaining temporaries
  }
  finished_ = true;

  // Files of an earlier checkpoint in this folder that the new one does not replace would confuse
  // readers (a stale index next to a new model.safetensors wins), so they go.
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(folder_)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == kSafetensorsSingleFile || name == kSafetensorsIndexFile || is_shard_name(name);
    if (ours && keep.count(name) == 0) stale.push_back(entry.path());
  }
  for (const auto& path : stale) {
    log_info("{}: removing {} of an earlier checkpoint", folder_.string(),
             path.filename().string());
    std::error_code ignored;
    fs::remove(path, ignored);
  }
  sync_path(folder_);
  return written;
}

void SafetensorsShardWriter::remove_temporaries() noexcept {
  for (const auto& path : temp_shards_)
    ::unlink(path.c_str());  // already renamed ones: ENOENT, fine
  temp_shards_.clear();
}

}  // namespace ptq
