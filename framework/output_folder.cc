#include "framework/output_folder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

#include "framework/checkpoint_config.h"
#include "framework/error.h"

namespace ptq {
namespace fs = std::filesystem;

namespace {

fs::path resolved(const fs::path& path) {
  std::error_code ec;
  fs::path out = fs::weakly_canonical(fs::absolute(path), ec);
  if (ec) out = fs::absolute(path).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "out/" is the folder "out"
  return out;
}

// Whether `inner` is `outer` or lies below it.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

// A config.json that does not parse is no ptq checkpoint (the folder is then judged by its files).
bool is_ptq_checkpoint(const fs::path& dir) {
  if (!fs::is_regular_file(dir / "config.json")) return false;
  nlohmann::json config;
  try {
    config = read_json_file(dir / "config.json");
  } catch (const Error&) {
    return false;
  }
  const auto q = config.is_object() ? config.find("quantization_config") : config.end();
  return q != config.end() && q->is_object() && q->contains("ptq");
}

// A Hugging Face model folder: config.json, weights, and nothing but the files such folders hold.
bool is_model_folder(const fs::path& dir, std::string* stranger) {
  if (!fs::is_regular_file(dir / "config.json")) return false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string ext = entry.path().extension().string();
    const bool known = entry.is_regular_file() &&
                       (ext == ".safetensors" || ext == ".json" || ext == ".model" || ext == ".txt" ||
                        ext == ".bin" || ext == ".md" || ext == ".jinja" || ext == ".bpe" || name == ".gitattributes");
    if (!known) {
      *stranger = name;
      return false;
    }
  }
  return true;
}

std::string first_entry(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names.empty() ? std::string() : names.front();
}

}  // namespace

void check_output_folder(const fs::path& out, const OutputFolderRules& rules) {
  PTQ_CHECK(!out.empty(), "the output folder is empty");
  const fs::path target = resolved(out);
  for (const fs::path& input : rules.inputs) {
    if (input.empty()) continue;
    const fs::path source = resolved(input);
    PTQ_CHECK(!is_within(target, source),
              "{}: the output folder is {} the input {}; ptq never writes into what it reads (choose another output folder)",
              out.string(), target == source ? "the same as" : "inside", input.string());
    PTQ_CHECK(!is_within(source, target),
              "{}: the output folder contains the input {}, which replacing it would delete (choose another output folder)",
              out.string(), input.string());
  }
  std::error_code ec;
  if (!fs::exists(target, ec) || !fs::is_directory(target, ec)) return;  // a file is refused by the writer
  if (fs::is_empty(target, ec) || is_ptq_checkpoint(target)) return;
  std::string stranger;
  if (is_model_folder(target, &stranger)) {
    PTQ_CHECK(rules.force,
              "{}: exists and holds a float model folder (config.json without a ptq quantization_config: another "
              "tool's, or a float folder); pass --force to replace it, or choose another output folder",
              out.string());
    return;
  }
  fail("{}: exists and holds files ptq did not write (e.g. \"{}\"); ptq replaces only an empty folder or a "
       "checkpoint of its own: choose another output folder",
       out.string(), stranger.empty() ? first_entry(target) : stranger);
}

}  // namespace ptq
