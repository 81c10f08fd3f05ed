// TensorStore: the tensors of a checkpoint folder (sharded through model.safetensors.index.json, or
// a single model.safetensors) or of one file, behind one set of queries.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/error.h"
#include "framework/log.h"
#include "framework/safetensors.h"

namespace ptq {
namespace fs = std::filesystem;
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A shard named by an index must be a plain relative path inside the folder.
bool is_safe_relative(const fs::path& path) {
  if (path.empty() || path.is_absolute()) return false;
  for (const auto& part : path)
    if (part == "..") return false;
  return true;
}

}  // namespace

TensorStore TensorStore::open(const fs::path& path) {
  const auto open_unguarded = [&]() -> TensorStore {
    PTQ_CHECK(fs::exists(path),
              "{}: no such file or folder, expected a model folder or a .safetensors file",
              path.string());
    TensorStore store;
    store.path_ = path;
    fs::path single = path;
    fs::path index;
    if (fs::is_directory(path)) {
      if (fs::exists(path / kSafetensorsIndexFile)) {
        index = path / kSafetensorsIndexFile;
      } else {
        single = path / kSafetensorsSingleFile;
        if (!fs::exists(single)) {
          std::vector<std::string> found;
          for (const auto& entry : fs::directory_iterator(path))
            if (entry.path().extension() == ".safetensors")
              found.push_back(entry.path().filename().string());
          std::sort(found.begin(), found.end());
          fail("{}: holds neither {} nor {}{}", path.string(), kSafetensorsIndexFile, kSafetensorsSingleFile,
               found.empty() ? std::string(" (and no .safetensors file)")
                             : fmt::format(" (it has {}, e.g. {}: open that file directly)",
                                           found.size(), found[0]));
        }
      }
    } else if (ends_with(path.filename().string(), ".index.json")) {
      index = path;
    }

    if (index.empty()) {
      auto file = std::make_shared<const SafetensorsFile>(single);
      for (const auto& name : file->names()) store.file_of_[name] = file.get();
      store.metadata_ = file->metadata();
      store.files_.push_back(std::move(file));
      return store;
    }

    // Sharded: the index's weight_map says which shard holds each tensor; it is the list of
    // tensors.
    store.is_sharded_ = true;
    const std::string index_name = index.string();
    std::ifstream in(index, std::ios::binary);
    PTQ_CHECK(in.good(), "{}: cannot open the index for reading", index_name);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    nlohmann::json json = detail::parse_json_rejecting_duplicates(
        text.data(), text.data() + text.size(), index_name, "key");
    PTQ_CHECK(json.is_object() && json.contains("weight_map") && json["weight_map"].is_object(),
              "{}: expected a JSON object with a \"weight_map\" object (tensor name -> shard file)",
              index_name);
    std::map<std::string, std::vector<std::string>> tensors_of_shard;
    for (const auto& item : json["weight_map"].items()) {
      PTQ_CHECK(item.value().is_string() && is_safe_relative(item.value().get<std::string>()),
                "{}: weight_map[\"{}\"] is {}, expected a shard file name inside the folder",
                index_name, item.key(), item.value().dump());
      tensors_of_shard[item.value().get<std::string>()].push_back(item.key());
    }

    const fs::path folder = index.parent_path();
    for (const auto& [shard_name, names] : tensors_of_shard) {  // shards in name order
      const fs::path shard_path = folder / shard_name;
      PTQ_CHECK(fs::exists(shard_path),
                "{}: shard {} (listed for {} tensors, e.g. \"{}\") does not exist", index_name,
                shard_path.string(), names.size(), names[0]);
      auto file = std::make_shared<const SafetensorsFile>(shard_path);
      for (const auto& name : names) {
        PTQ_CHECK(file->has(name),
                  "{}: tensor \"{}\" is listed for shard {}, but that shard does not contain it",
                  index_name, name, shard_path.string());
        store.file_of_[name] = file.get();
      }
      if (file->size() > names.size())
        log_warning("{}: {} tensors in the shard are not listed in {} and are ignored",
                    shard_path.string(), file->size() - names.size(), index_name);
      for (const auto& item : file->metadata()) store.metadata_.insert(item);  // first shard wins
      store.files_.push_back(std::move(file));
    }
    return store;
  };
  // std::filesystem throws its own error for names the OS refuses (too long, bad encoding), which
  // can come from an index file: turn it into ours, naming the file.
  try {
    return open_unguarded();
  } catch (const fs::filesystem_error& e) {
    fail("{}: cannot open the checkpoint: {}", path.string(), e.what());
  }
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> names;
  names.reserve(file_of_.size());
  for (const auto& item : file_of_) names.push_back(item.first);
  return names;
}

const SafetensorsFile& TensorStore::lookup(const std::string& name) const {
  auto it = file_of_.find(name);
  if (it == file_of_.end())
    fail("{}: no tensor \"{}\" in this checkpoint ({} tensors in {} file{})", path_.string(), name,
         file_of_.size(), files_.size(), files_.size() == 1 ? "" : "s");
  return *it->second;
}

const SafetensorsTensorInfo& TensorStore::info(const std::string& name) const {
  return lookup(name).info(name);
}

torch::Tensor TensorStore::tensor(const std::string& name) const {
  return lookup(name).tensor(name);
}

const SafetensorsFile& TensorStore::file_of(const std::string& name) const { return lookup(name); }

}  // namespace ptq
