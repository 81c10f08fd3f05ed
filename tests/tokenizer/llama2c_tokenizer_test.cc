// llama2.c tokenizer files (tok*.bin): the documented stories260K examples (shared/data/models/
// stories260K/REFERENCE.md), and merge order, byte fallback and file errors on a tiny file made
// here.
#include "network_helpers/tokenizer/llama2c_tokenizer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "framework/error.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

using Ids = std::vector<int64_t>;

TEST(Llama2cTokenizer, Stories260kReferenceExamples) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto tokenizer =
      load_tokenizer(testing::shared_data_dir() / "models/stories260K/tok512.bin");
  EXPECT_EQ(tokenizer->kind(), "llama2.c");
  EXPECT_EQ(tokenizer->vocab_size(), 512);
  EXPECT_EQ(tokenizer->encode("Once upon", true), (Ids{1, 403, 407}));
  EXPECT_EQ(tokenizer->encode("Zoo", true), (Ids{1, 410, 469, 347}));
  EXPECT_EQ(tokenizer->encode("Zoo", false), (Ids{410, 469, 347}));
  EXPECT_EQ(tokenizer->encode("", true), (Ids{1}));
  EXPECT_EQ(tokenizer->decode({1, 403, 407}, true), "Once upon");

  // REFERENCE.md case 2: `run stories260K.bin -z tok512.bin -t 0 -i "Zoo" -n 60`, BOS + 60 ids.
  const Ids generated = {1,   410, 469, 347, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                         338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282,
                         295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266,
                         268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 358,
                         279, 292, 416, 439, 413, 391, 267, 337, 335};
  EXPECT_EQ(tokenizer->decode(generated, true),
            "Zoo was a little girl named Lily. She loved to play outside in the park. One day, she "
            "saw a big, red ball. She wanted to play with it, but she didn't want to play with");
}

// The Llama-2 vocabulary exported by llama2.c (tokenizer.bin) encodes prose like sentencepiece does
// with its tokenizer.model.
TEST(Llama2cTokenizer, Llama2ExportAgreesWithSentencePieceOnProse) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto dir = testing::shared_data_dir() / "tokenizers/llama2-sentencepiece";
  const auto bin = std::make_shared<Llama2cTokenizer>(dir / "tokenizer.bin");
  const auto model = load_tokenizer(dir / "tokenizer.model");
  for (const char* text : {"Hello, world!", "The history of the city",
                           "Once upon a time, there was a "
                           "little girl named Lily.",
                           "I'm sure we'll see"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(bin->encode(text, true), model->encode(text, true));
    EXPECT_EQ(bin->decode(bin->encode(text, true), true), text);
  }
}

// A llama2.c tokenizer file from (piece, score) pairs; ids 0..258 are <unk>, BOS, EOS and the
// bytes.
std::string tok_bin(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::pair<std::string, float>> pieces = {
      {"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    pieces.emplace_back(name, 0);
  }
  pieces.insert(pieces.end(), extra.begin(), extra.end());
  std::string out;
  const auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  int32_t max_length = 8;
  put(&max_length, 4);
  for (const auto& [piece, score] : pieces) {
    const auto length = static_cast<int32_t>(piece.size());
    put(&score, 4);
    put(&length, 4);
    put(piece.data(), piece.size());
  }
  return out;
}

TEST(Llama2cTokenizer, MergesTheHighestScoringPairFirst) {
  // 259 " ", 260 "a", 261 "b", 262 "c", 263 "ab", 264 "bc", 265 " a", 266 "abc"
  const auto dir = testing::temp_dir("llama2c_merge");
  testing::write_file(dir / "tok.bin", tok_bin({{" ", -1},
                                                {"a", -1},
                                                {"b", -1},
                                                {"c", -1},
                                                {"ab", -5},
                                                {"bc", -2},
                                                {" a", -3},
                                                {"abc", -4}}));
  const auto tokenizer = load_tokenizer(dir);
  // " abc" (dummy prefix): of " a" (-3), "ab" (-5), "bc" (-2), "bc" merges first; then " a" (-3)
  // beats "abc" (-4); " abc" is not a piece, so the result is [" a", "bc"].
  EXPECT_EQ(tokenizer->encode("abc", false), (Ids{265, 264}));
  // Unknown characters fall back to bytes: 'é' = C3 A9 -> 0xC3 + 3, 0xA9 + 3.
  EXPECT_EQ(tokenizer->encode("\xC3\xA9", true), (Ids{1, 259, 0xC3 + 3, 0xA9 + 3}));
  EXPECT_EQ(tokenizer->decode({1, 259, 0xC3 + 3, 0xA9 + 3}, true), "\xC3\xA9");
  EXPECT_EQ(tokenizer->decode({1, 265, 264}, false), "\n<s>\nabc");
  EXPECT_EQ(tokenizer->decode({265, 264}, true), " abc");  // run.c strips the space only after BOS
}

TEST(Llama2cTokenizer, TruncatedFileNamesTheFileAndOffset) {
  const auto dir = testing::temp_dir("llama2c_truncated");
  std::string bytes = tok_bin({});
  bytes.resize(bytes.size() - 3);
  const auto file = testing::write_file(dir / "tok9.bin", bytes);
  try {
    Llama2cTokenizer tokenizer(file);
    FAIL() << "expected ptq::Error";
  } catch (const ptq::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ptq
