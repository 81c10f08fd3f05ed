// The ptq-small-32m tokenizer against what Hugging Face transformers measured on that model
// (shared/data/models/ptq-small-32m/reference.json): prompt ids, decoded greedy outputs, and the
// token counts of whole evaluation files (which also times encoding).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr double kMaxEncodeSeconds = 30.0;
#else
constexpr double kMaxEncodeSeconds = 4.0;
#endif

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(PtqSmall32mTokenizer, ReproducesTheGreedyReferences) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto model = testing::shared_data_dir() / "models/ptq-small-32m";
  const auto tokenizer = load_tokenizer(model);
  EXPECT_EQ(tokenizer->encode("The history of the city", true),
            (std::vector<int64_t>{0, 529, 2950, 279, 263, 2370}));
  const auto reference = testing::read_json(model / "reference.json");
  ASSERT_GE(reference["greedy"].size(), 4u);
  for (const auto& greedy : reference["greedy"]) {
    const std::string prompt = greedy["prompt"];
    SCOPED_TRACE(prompt);
    EXPECT_EQ(tokenizer->encode(prompt, true), greedy["prompt_ids"].get<std::vector<int64_t>>());
    const auto output_ids = greedy["output_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tokenizer->decode(output_ids, true), greedy["text"].get<std::string>());
  }
  EXPECT_EQ(tokenizer->encode("The", true).front(), tokenizer->bos_id());
  EXPECT_EQ(tokenizer->encode("The", false).front(), 529);
}

// reference.json's eval block: the number of tokens of each file, encoded whole without special
// tokens.
TEST(PtqSmall32mTokenizer, CountsTheTokensOfWholeFilesQuickly) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto data = testing::shared_data_dir();
  const auto tokenizer = load_tokenizer(data / "models/ptq-small-32m");
  const auto eval = testing::read_json(data / "models/ptq-small-32m/reference.json")["eval"];
  const std::pair<const char*, const char*> files[] = {
      {"gutenberg_heldout.txt", "heldout/gutenberg_heldout.txt"},
      {"test.txt", "wikitext2/test.txt"}};
  for (const auto& [name, path] : files) {
    SCOPED_TRACE(name);
    const std::string text = read_text(data / path);
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tokenizer->encode(text, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(static_cast<int64_t>(ids.size()), eval[name]["tokens"].get<int64_t>());
    std::cout << "[ encode   ] " << name << ": " << text.size() << " bytes -> " << ids.size()
              << " tokens in " << seconds << " s\n";
    // The requirement is well under 2 s (about 0.25 s on an idle core); the bound is loose so that
    // a loaded machine or a sanitizer build does not fail it.
    EXPECT_LT(seconds, kMaxEncodeSeconds);
    // Byte-level BPE loses nothing: the whole file decodes back to itself.
    EXPECT_TRUE(tokenizer->decode(ids, false) == text);
  }
}

}  // namespace
}  // namespace ptq
