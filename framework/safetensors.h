// Safetensors checkpoints: memory-mapped, validated reading of one file or of a (sharded) Hugging
// Face model folder, and atomic writing of one file or of a sharded folder. docs/SAFETENSORS.md
// describes the format and where we differ from the reference implementation.
//
// File layout (all integers little-endian):
//   [8 bytes: N = header length] [N bytes: JSON header, padded with spaces] [data section]
// The header maps each tensor name to {"dtype": "BF16", "shape": [..], "data_offsets": [begin,
// end]}, offsets relative to the start of the data section; the optional "__metadata__" entry is a
// string -> string map. Tensors are row-major, contiguous, and tile the data section exactly.
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ptq {

// The reference implementation refuses headers longer than this (its MAX_HEADER_SIZE); so do the
// reader, before allocating anything, and the writer.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// ---- dtypes ------------------------------------------------------------------------------------

// "BF16" -> torch::kBFloat16. Throws ptq::Error for names this LibTorch cannot represent (F8_*,
// U16, U32, U64 before LibTorch 2.1/2.3) and for names the format does not have.
torch::ScalarType safetensors_dtype_to_torch(const std::string& name);

// torch::kBFloat16 -> "BF16". Throws ptq::Error for dtypes the format has no name for (complex,
// quantized types).
std::string torch_dtype_to_safetensors(torch::ScalarType dtype);

// Bytes per element of a safetensors dtype name (including those torch lacks, like F8_E4M3); 0 when
// the name is not a safetensors dtype.
size_t safetensors_dtype_size(const std::string& name);

// ---- reading -----------------------------------------------------------------------------------

// One tensor as the header describes it.
struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype_name;                                  // as in the header: "BF16"
  torch::ScalarType dtype = torch::ScalarType::Undefined;  // Undefined when torch lacks dtype_name
  std::vector<int64_t> shape;                              // empty for a 0-d scalar
  uint64_t data_begin = 0;                                 // byte offsets into the data section
  uint64_t data_end = 0;

  uint64_t nbytes() const { return data_end - data_begin; }
  int64_t numel() const;
};

// The bytes of a file's memory mapping, for checking that a tensor is a view into it.
struct MappedRange {
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool contains(const void* pointer) const {
    auto* p = static_cast<const uint8_t*>(pointer);
    return p >= data && p < data + size;
  }
};

// One .safetensors file, memory-mapped and validated when constructed (see docs/SAFETENSORS.md for
// the rules). Tensors are zero-copy views into the mapping and keep it alive after the
// SafetensorsFile is gone. The mapping is private and writable: an in-place write to a returned
// tensor changes only this process's copy of the page, never the file. Copies share the mapping.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws ptq::Error naming the tensor and the file when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // A CPU tensor viewing the mapping; a copy when the data is not aligned to the element size.
  torch::Tensor tensor(const std::string& name) const;
  // The "__metadata__" map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  MappedRange mapped_range() const;
  // Gives the pages that lie wholly inside tensor `name`'s bytes back to the kernel
  // (madvise MADV_DONTNEED): they stop counting in this process's resident memory and are read
  // from the file again if touched. Call it once the tensor has been copied out: a view of it still
  // in use would see the file's bytes again (an in-place write to it would be lost). Layer-streamed
  // quantization uses it so a model's mapped weights do not accumulate in memory.
  void release_pages(const std::string& name) const;
  // Where the data section starts in the file: 8 + header length.
  uint64_t data_offset() const { return data_offset_; }

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t data_offset_ = 0;
  std::map<std::string, SafetensorsTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// The file names of a checkpoint folder's tensors (Hugging Face's): one file, or shards and their index.
inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

// The tensors of a checkpoint: a folder holding model.safetensors.index.json (weight_map: tensor ->
// shard file) or model.safetensors, a single .safetensors file, or an index file. Same queries as
// SafetensorsFile, across shards. Cheap to copy (files are shared).
class TensorStore {
 public:
  static TensorStore open(const std::filesystem::path& path);

  // What was opened: the folder, or the file when a file was given.
  const std::filesystem::path& path() const { return path_; }
  bool is_sharded() const { return is_sharded_; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return file_of_.size(); }
  bool has(const std::string& name) const { return file_of_.count(name) != 0; }
  // These throw ptq::Error naming the tensor and the folder/file when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  // SafetensorsFile::release_pages of the file holding `name`.
  void release_pages(const std::string& name) const { lookup(name).release_pages(name); }
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }
  // The "__metadata__" of every file merged; on a conflicting key the first file (in name order)
  // wins.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  TensorStore() = default;
  const SafetensorsFile& lookup(const std::string& name) const;

  std::filesystem::path path_;
  bool is_sharded_ = false;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> file_of_;
  std::map<std::string, std::string> metadata_;
};

// ---- writing -----------------------------------------------------------------------------------

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes one .safetensors file atomically: into "<path>.tmp.<pid>" in the same folder, fsync,
// rename. On any failure the temporary is removed and ptq::Error is thrown; an existing file at
// `path` is replaced only on success. Tensors are made contiguous and moved to CPU. The data
// section holds the tensors in the given order, stably sorted by element size (largest first) so
// that every tensor starts aligned to its element size (the mapped reader needs that to return
// views). "__metadata__" is written only when `metadata` is not empty.
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint's tensors incrementally, split into shards of at most `max_shard_bytes`
// tensor bytes (headers not counted, as in Hugging Face; a tensor larger than the limit gets a
// shard of its own). add() keeps a reference to each tensor (a CPU copy when it lives elsewhere,
// none when it is already a contiguous CPU tensor: do not modify it in place until finish()) and
// writes a shard to a temporary file as soon as it is full, so memory holds at most about one
// shard.
//
// finish() renames the shards to their final names and writes the index last:
//   one shard    -> model.safetensors (no index, like Hugging Face)
//   several      -> model-00001-of-0000N.safetensors ... + model.safetensors.index.json
// and then removes files of an earlier checkpoint in that folder that the new one does not replace
// (model.safetensors, the index, model-*-of-*.safetensors). Each file appears whole or not at all;
// for an all-or-nothing checkpoint, write into a temporary folder and rename it (save_checkpoint
// does). Destroying the writer without finish() (or after a failure) removes its temporaries.
// Every shard's "__metadata__" is `metadata` plus "format": "pt" unless given (transformers refuses
// safetensors files whose metadata has another or no "format").
class SafetensorsShardWriter {
 public:
  static constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000;  // transformers' "5GB"

  explicit SafetensorsShardWriter(std::filesystem::path folder,
                                  uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                                  std::map<std::string, std::string> metadata = {});
  ~SafetensorsShardWriter();
  SafetensorsShardWriter(const SafetensorsShardWriter&) = delete;
  SafetensorsShardWriter& operator=(const SafetensorsShardWriter&) = delete;

  // Throws ptq::Error on a duplicate name, an unsupported dtype or layout, or a failed shard write;
  // the writer stays usable after a rejected tensor.
  void add(const std::string& name, const torch::Tensor& tensor);
  // Adds tensor `source_name` of a safetensors file under `name` without reading it into memory:
  // its bytes are copied from the file (pread, a few MiB at a time) when its shard is written, so a
  // checkpoint assembled from files already on disk (the parts of a layer-streamed run) needs no
  // memory for its tensors. The CRC-32 comes from the file's "ptq_crc32" record when it has one
  // (else it is computed from the file). The file must stay unchanged until finish().
  void add_from_file(const std::string& name, const std::shared_ptr<const SafetensorsFile>& file,
                     const std::string& source_name);
  // Returns the files written: the shards in order, then the index when there is one.
  std::vector<std::filesystem::path> finish();

  size_t num_tensors() const { return names_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  void flush_shard();
  void remove_temporaries() noexcept;

  std::filesystem::path folder_;
  uint64_t max_shard_bytes_;
  std::map<std::string, std::string> metadata_;
  NamedTensors pending_;
  // Tensors of pending_ whose bytes come from a file (add_from_file): pending_ holds a stand-in of
  // the right dtype and shape (one stored element, stride 0).
  struct FileSource {
    std::shared_ptr<const SafetensorsFile> file;
    std::string name;
    uint32_t crc = 0;
  };
  std::map<std::string, FileSource> file_sources_;
  uint64_t pending_bytes_ = 0;
  std::vector<std::filesystem::path> temp_shards_;     // written, not yet renamed
  std::vector<std::vector<std::string>> shard_names_;  // tensor names of each written shard
  std::set<std::string> names_;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

namespace detail {
// Parses JSON text, rejecting a key that appears twice in one object (nlohmann::json would silently
// keep the last one). `source` starts every message ("x.safetensors: header"); a top-level
// duplicate is called a duplicate `top_level_key_meaning` ("tensor name"). Used for headers and
// indexes.
nlohmann::json parse_json_rejecting_duplicates(const char* begin, const char* end,
                                               const std::string& source,
                                               const std::string& top_level_key_meaning);
}  // namespace detail

}  // namespace ptq
