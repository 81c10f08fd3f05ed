#include "network_helpers/tokenizer/load_tokenizer.h"

#include <algorithm>

#include "framework/error.h"
#include "network_helpers/tokenizer/gpt2_tokenizer.h"
#include "network_helpers/tokenizer/hf_tokenizer_json.h"
#include "network_helpers/tokenizer/llama2c_tokenizer.h"
#include "network_helpers/tokenizer/sentencepiece_tokenizer.h"

namespace ptq {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<Tokenizer> load_hf_json(const fs::path& file) {
  const fs::path config = file.parent_path() / "tokenizer_config.json";
  return load_hf_tokenizer(file, fs::is_regular_file(config) ? config : fs::path());
}

// llama2.c tokenizers in a folder: tokenizer.bin, else exactly one tok*.bin.
fs::path find_llama2c_file(const fs::path& folder) {
  if (fs::is_regular_file(folder / "tokenizer.bin")) return folder / "tokenizer.bin";
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.rfind("tok", 0) == 0 &&
        entry.path().extension() == ".bin") {
      found.push_back(entry.path());
    }
  }
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    ptq::fail("{}: several llama2.c tokenizers ({}, {}, ...): pass the file to use",
              folder.string(), found[0].filename().string(), found[1].filename().string());
  }
  return found.empty() ? fs::path() : found[0];
}

std::shared_ptr<Tokenizer> load_from_folder(const fs::path& folder) {
  if (fs::is_regular_file(folder / "tokenizer.json"))
    return load_hf_json(folder / "tokenizer.json");
  if (fs::is_regular_file(folder / "tokenizer.model")) {
    return std::make_shared<SentencePieceTokenizer>(folder / "tokenizer.model");
  }
  if (fs::is_regular_file(folder / "encoder.json") && fs::is_regular_file(folder / "vocab.bpe")) {
    return load_gpt2_tokenizer(folder / "encoder.json", folder / "vocab.bpe");
  }
  if (const fs::path bin = find_llama2c_file(folder); !bin.empty()) {
    return std::make_shared<Llama2cTokenizer>(bin);
  }
  ptq::fail(
      "{}: no tokenizer found; looked for tokenizer.json (+ tokenizer_config.json), "
      "tokenizer.model, "
      "encoder.json + vocab.bpe, tokenizer.bin or tok*.bin",
      folder.string());
}

std::shared_ptr<Tokenizer> load_from_file(const fs::path& file) {
  const std::string name = file.filename().string();
  const std::string extension = file.extension().string();
  const fs::path folder = file.parent_path();
  if (name == "encoder.json" || name == "vocab.bpe") {
    PTQ_CHECK(
        fs::is_regular_file(folder / "encoder.json") && fs::is_regular_file(folder / "vocab.bpe"),
        "{}: a GPT-2 tokenizer needs encoder.json and vocab.bpe side by side in {}", file.string(),
        folder.string());
    return load_gpt2_tokenizer(folder / "encoder.json", folder / "vocab.bpe");
  }
  if (extension == ".json") return load_hf_json(file);
  if (extension == ".model") return std::make_shared<SentencePieceTokenizer>(file);
  if (extension == ".bin") return std::make_shared<Llama2cTokenizer>(file);
  ptq::fail(
      "{}: unknown tokenizer file; expected tokenizer.json, encoder.json / vocab.bpe, a "
      "SentencePiece "
      ".model or a llama2.c .bin",
      file.string());
}

}  // namespace

std::shared_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  if (fs::is_directory(path)) return load_from_folder(path);
  if (fs::is_regular_file(path)) return load_from_file(path);
  ptq::fail("{}: no such tokenizer file or model folder", path.string());
}

}  // namespace ptq
