// Malformed or missing tokenizer files fail with a ptq::Error that names the file and the key (or
// line) and says what was expected.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "framework/error.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

// Loads `path` and returns the ptq::Error message (fails the test when loading succeeds).
std::string load_error(const std::filesystem::path& path) {
  try {
    load_tokenizer(path);
  } catch (const ptq::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "loading " << path << " did not throw ptq::Error";
  return "";
}

// Writes `tokenizer_json` into a fresh folder and returns the loading error.
std::string json_error(const std::string& test, const std::string& tokenizer_json,
                       std::filesystem::path* file = nullptr) {
  const auto dir = testing::temp_dir(test);
  const auto path = testing::write_file(dir / "tokenizer.json", tokenizer_json);
  if (file) *file = path;
  return load_error(path);
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

constexpr const char* kVocab = R"("vocab": {"a": 0, "b": 1, "ab": 2})";

TEST(TokenizerErrors, MissingModel) {
  std::filesystem::path file;
  const auto message = json_error("no_model", R"({"added_tokens": []})", &file);
  expect_contains(message, {file.string(), "key 'model'", "missing"});
}

TEST(TokenizerErrors, UnknownModelType) {
  std::filesystem::path file;
  const auto message =
      json_error("unigram", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})", &file);
  expect_contains(message, {file.string(), "key 'model.type'", "Unigram", "BPE"});
}

TEST(TokenizerErrors, BadMergesEntry) {
  std::filesystem::path file;
  auto message = json_error(
      "bad_merge",
      std::string(R"({"model": {"type": "BPE", )") + kVocab + R"(, "merges": ["a b", 42]}})",
      &file);
  expect_contains(message, {file.string(), "key 'model.merges[1]'", "expected a merge", "got 42"});
  message = json_error("bad_merge2", std::string(R"({"model": {"type": "BPE", )") + kVocab +
                                         R"(, "merges": ["ab"]}})");
  expect_contains(message, {"key 'model.merges[0]'", "\"ab\""});
  // A merge of tokens outside the vocabulary.
  message = json_error("bad_merge3", std::string(R"({"model": {"type": "BPE", )") + kVocab +
                                         R"(, "merges": ["a b", "b z"]}})");
  expect_contains(message, {"key 'model.merges[1]'", "'z' is not in the vocabulary"});
  message = json_error("bad_merges", std::string(R"({"model": {"type": "BPE", )") + kVocab +
                                         R"(, "merges": "a b"}})");
  expect_contains(message, {"key 'model.merges'", "expected a list of merges"});
}

TEST(TokenizerErrors, BadStages) {
  const std::string model =
      std::string(R"("model": {"type": "BPE", )") + kVocab + R"(, "merges": []})";
  std::filesystem::path file;
  auto message = json_error(
      "bad_pre", "{" + model + R"(, "pre_tokenizer": {"type": "BertPreTokenizer"}})", &file);
  expect_contains(message, {file.string(), "key 'pre_tokenizer.type'", "BertPreTokenizer"});
  message = json_error("bad_regex", "{" + model + R"(, "pre_tokenizer": {"type": "Sequence",
      "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}]}})");
  expect_contains(message, {"key 'pre_tokenizer.pretokenizers[0].pattern.Regex'", "(unclosed"});
  message = json_error("bad_norm", "{" + model + R"(, "normalizer": {"type": "Precompiled"}})");
  expect_contains(message, {"key 'normalizer.type'", "Precompiled"});
  message = json_error(
      "bad_dec", "{" + model + R"(, "decoder": {"type": "Strip", "content": " ", "start": -1}})");
  expect_contains(message, {"key 'decoder.start'", "got -1"});
  message =
      json_error("bad_post", "{" + model + R"(, "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {}}})");
  expect_contains(message, {"key 'post_processor.special_tokens.<s>'", "missing"});
  message = json_error("bad_added", "{" + model + R"(, "added_tokens": [{"id": 5}]})");
  expect_contains(message, {"key 'added_tokens[0].content'", "missing"});
}

TEST(TokenizerErrors, NotJson) {
  std::filesystem::path file;
  expect_contains(json_error("not_json", "{\"model\": ", &file), {file.string(), "not valid JSON"});
}

TEST(TokenizerErrors, BadTokenizerConfig) {
  const auto dir = testing::temp_dir("bad_config");
  testing::write_file(dir / "tokenizer.json", std::string(R"({"model": {"type": "BPE", )") +
                                                  kVocab + R"(, "merges": []}})");
  const auto config = testing::write_file(dir / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  expect_contains(load_error(dir),
                  {config.string(), "key 'bos_token'", "'<s>' is not in the vocabulary"});
  testing::write_file(config, R"({"eos_token": 7})");
  expect_contains(load_error(dir), {config.string(), "key 'eos_token'", "got 7"});
}

TEST(TokenizerErrors, NoTokenizerInFolder) {
  const auto dir = testing::temp_dir("empty_model");
  expect_contains(load_error(dir), {dir.string(), "tokenizer.json", "tokenizer.model",
                                    "encoder.json + vocab.bpe", "tok*.bin"});
  expect_contains(load_error(dir / "missing"), {(dir / "missing").string(), "no such"});
  expect_contains(load_error(testing::write_file(dir / "vocab.txt", "a\n")),
                  {"vocab.txt", "unknown tokenizer file"});
}

TEST(TokenizerErrors, BadVocabBpeLine) {
  const auto dir = testing::temp_dir("bad_vocab_bpe");
  testing::write_file(dir / "encoder.json", R"({"a": 0, "b": 1, "ab": 2})");
  const auto bpe = testing::write_file(dir / "vocab.bpe", "#version: 0.2\na b\nab\n");
  expect_contains(load_error(dir), {bpe.string(), "line 3", "\"ab\""});
}

TEST(TokenizerErrors, BadSentencePieceModel) {
  const auto dir = testing::temp_dir("bad_spm");
  const auto file = testing::write_file(dir / "tokenizer.model", "not a protobuf");
  expect_contains(load_error(dir), {file.string(), "SentencePiece"});
}

}  // namespace
}  // namespace ptq
