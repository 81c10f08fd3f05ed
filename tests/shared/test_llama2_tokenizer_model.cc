// The real Llama-2 tokenizer.model of ../shared in a program that links LibTorch -- this suite, and the
// ptq binary -- against the sentencepiece reference ids of tests/data/tokenizer/llama2-sentencepiece.json
// (core/test_sentencepiece_with_torch.cc says why a LibTorch process is the case that matters).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "network_helpers/tokenizer/load_tokenizer.h"
#include "ptq/build_config.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

json reference_cases() {
  std::ifstream in(fs::path(PTQ_SOURCE_DIR) / "tests/data/tokenizer/llama2-sentencepiece.json");
  return json::parse(in);
}

TEST(Llama2TokenizerModel, MatchesTheReferenceInALibTorchProcess) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto tokenizer = load_tokenizer(testing::shared_data_dir() / "tokenizers/llama2-sentencepiece/tokenizer.model");
  EXPECT_EQ(tokenizer->kind(), "sentencepiece");
  EXPECT_EQ(tokenizer->vocab_size(), 32000);
  for (const json& c : reference_cases()) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    EXPECT_EQ(tokenizer->encode(text, true), c["ids_with_special"].get<std::vector<int64_t>>());
    EXPECT_EQ(tokenizer->decode(c["ids_with_special"].get<std::vector<int64_t>>(), true), c["decoded"].get<std::string>());
  }
}

TEST(Llama2TokenizerModel, PtqTokenizeMatchesTheReference) {
  PTQ_REQUIRE_SHARED_DATA();
  const fs::path file = testing::shared_data_dir() / "tokenizers/llama2-sentencepiece/tokenizer.model";
  const json cases = reference_cases();
  for (size_t i = 0; i < 3 && i < cases.size(); ++i) {
    const std::string text = cases[i]["text"];
    const testing::CommandResult r = testing::run_command(
        fmt::format("'{}' --quiet tokenize --tokenizer '{}' --special --json {}", PTQ_TEST_PTQ_BINARY,
                    file.string(), json(text).dump()));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(json::parse(r.out)["ids"].get<std::vector<int64_t>>(),
              cases[i]["ids_with_special"].get<std::vector<int64_t>>());
  }
}

}  // namespace
}  // namespace ptq
