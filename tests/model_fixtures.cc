#include "model_fixtures.h"

#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "framework/error.h"
#include "network_helpers/llama/random_model.h"
#include "test_util.h"

namespace ptq::testing {

std::filesystem::path tiny_model_dir(const std::string& name, const nlohmann::json& overrides) {
  auto dir = temp_dir("model_" + name);
  nlohmann::json config = preset_config("tiny");
  if (overrides.is_object()) config.update(overrides);
  RandomModelOptions options;
  options.dtype = "float32";
  options.seed = 7;
  options.init_std = 0.1;  // large enough that logits differ clearly between tokens
  write_random_llama(dir, config, options);
  return dir;
}

TinyNet tiny_net() {
  TinyNet t;
  t.helper = std::make_shared<LlamaNetworkHelper>(tiny_model_dir());
  t.net = t.helper->create_network();
  return t;
}

PTQConfig config_from(const nlohmann::json& recipe) { return PTQConfig::from_json(recipe, "test config"); }

torch::Tensor random_word_ids(NetworkHelper& helper, unsigned seed, int64_t count, int64_t length) {
  std::vector<int64_t> ids = helper.create_tokenizer()->encode(random_words(seed, 200), false);
  PTQ_CHECK(int64_t(ids.size()) >= count * length, "random_word_ids: {} ids, {} x {} asked", ids.size(), count, length);
  ids.resize(count * length);
  return torch::tensor(ids).view({count, length});
}

std::string random_words(unsigned seed, int words) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> letter('a', 'z'), length(1, 8);
  std::string text;
  for (int w = 0; w < words; ++w) {
    for (int i = length(rng); i > 0; --i) text += static_cast<char>(letter(rng));
    text += w % 11 == 10 ? '\n' : ' ';
  }
  return text;
}

std::string random_words_file(const std::string& name, unsigned seed, int words) {
  static std::mutex mutex;
  static std::map<std::string, std::string> written;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = written.find(name);
  if (found != written.end()) return found->second;
  const auto file = temp_dir(name) / "calibration.txt";
  std::ofstream(file) << random_words(seed, words);
  return written[name] = file.string();
}

namespace {

// Protocol-buffer wire format, just what a ModelProto needs (field numbers: sentencepiece_model.proto).
std::string varint(uint64_t value) {
  std::string out;
  do {
    uint8_t byte = value & 0x7f;
    value >>= 7;
    out.push_back(static_cast<char>(value != 0 ? byte | 0x80 : byte));
  } while (value != 0);
  return out;
}
std::string varint_field(int field, uint64_t value) { return varint(uint64_t(field) << 3 | 0) + varint(value); }
std::string bytes_field(int field, const std::string& bytes) {
  return varint(uint64_t(field) << 3 | 2) + varint(bytes.size()) + bytes;
}
std::string float_field(int field, float value) {
  std::string out = varint(uint64_t(field) << 3 | 5);
  out.append(reinterpret_cast<const char*>(&value), sizeof value);  // little-endian, as x86-64 stores it
  return out;
}

}  // namespace

std::filesystem::path tiny_sentencepiece_model() {
  static const std::filesystem::path file = [] {
    enum Type { kNormal = 1, kUnknown = 2, kControl = 3 };
    struct Piece {
      std::string text;
      float score;
      Type type;
    };
    std::vector<Piece> pieces = {{"<unk>", 0, kUnknown}, {"<s>", 0, kControl}, {"</s>", 0, kControl}};
    // BPE merges the adjacent pair whose union scores highest: ▁h, ll, ▁he, llo, ▁hello; ▁w, or, ld, ▁wor...
    const std::string space = "\xe2\x96\x81";  // "▁", sentencepiece's word-start mark
    const std::vector<std::string> merges = {space + "h", "ll", space + "he", "llo", space + "hello",
                                             space + "w", "or", "ld", space + "wor", space + "world"};
    for (size_t i = 0; i < merges.size(); ++i) pieces.push_back({merges[i], -1.0f - float(i), kNormal});
    pieces.push_back({space, -20, kNormal});
    for (char c : std::string("dehlorw")) pieces.push_back({std::string(1, c), -30.0f - float(c - 'a'), kNormal});
    std::string model;
    for (const Piece& p : pieces)
      model += bytes_field(1, bytes_field(1, p.text) + float_field(2, p.score) + varint_field(3, p.type));
    model += bytes_field(2, varint_field(3, /*model_type BPE*/ 2));
    model += bytes_field(3, bytes_field(1, "identity"));
    const auto path = temp_dir("tiny_sentencepiece") / "tokenizer.model";
    std::ofstream(path, std::ios::binary) << model;
    return path;
  }();
  return file;
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor b64 = b.to(torch::kFloat64);
  return ((a.to(torch::kFloat64) - b64).norm() / b64.norm()).item<double>();
}

}  // namespace ptq::testing
