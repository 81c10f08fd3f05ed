// The building blocks of the tokenizers: UTF-8 repair, the byte-level mapping, Split behaviours,
// NFC, PCRE2 regexes with the Llama-3 pattern, and GPT-2's encoder.json + vocab.bpe on a tiny pair
// of files.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "network_helpers/tokenizer/byte_level.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "network_helpers/tokenizer/pre_tokenizer.h"
#include "network_helpers/tokenizer/regex.h"
#include "network_helpers/tokenizer/utf8.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

using Strings = std::vector<std::string>;

TEST(TokenizerUtf8, RepairsInvalidInputLikeTextDecoder) {
  EXPECT_EQ(tok::to_valid_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(tok::to_valid_utf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(tok::to_valid_utf8("a\xE2\x82z"), "a\xEF\xBF\xBDz");  // one U+FFFD for E2 82
  EXPECT_EQ(tok::to_valid_utf8("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::to_valid_utf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_FALSE(tok::is_valid_utf8("\xC0\xAF"));       // overlong '/'
  EXPECT_TRUE(tok::is_valid_utf8("\xF0\x9F\x91\x8D"));
}

TEST(TokenizerUtf8, Normalization) {
  EXPECT_EQ(tok::unicode_normalize("e\xCC\x81", tok::NormalForm::kNFC), "\xC3\xA9");
  EXPECT_EQ(tok::unicode_normalize("\xC3\xA9", tok::NormalForm::kNFD), "e\xCC\x81");
  EXPECT_EQ(tok::unicode_normalize("\xEF\xAC\x81", tok::NormalForm::kNFKC), "fi");  // ligature
  EXPECT_EQ(tok::unicode_lowercase("\xC3\x89T\xC3\xA9"), "\xC3\xA9t\xC3\xA9");
}

TEST(TokenizerByteLevel, MapsEveryByteAndBack) {
  EXPECT_EQ(tok::bytes_to_byte_level(" "), "\xC4\xA0");   // 'Ġ'
  EXPECT_EQ(tok::bytes_to_byte_level("\n"), "\xC4\x8A");  // 'Ċ'
  EXPECT_EQ(tok::bytes_to_byte_level("a!~"), "a!~");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(tok::byte_level_to_bytes(tok::bytes_to_byte_level(all)), all);
  EXPECT_EQ(tok::byte_level_to_bytes("\xE2\x96\x81"), "\xE2\x96\x81");  // '▁' is outside: kept
  EXPECT_EQ(tok::parse_byte_token("<0x0A>"), 0x0A);
  EXPECT_EQ(tok::parse_byte_token("<0xZZ>"), std::nullopt);
}

Strings split(const std::string& behavior, const std::string& text, bool invert = false) {
  const tok::Json config = {{"type", "Split"},
                            {"pattern", {{"String", "-"}}},
                            {"behavior", behavior},
                            {"invert", invert}};
  auto pre = tok::make_pre_tokenizer(config, tok::JsonPath("test.json", "pre_tokenizer"));
  Strings pieces{text};
  pre->pre_tokenize(pieces, true);
  return pieces;
}

// The examples of Hugging Face's SplitDelimiterBehavior documentation.
TEST(TokenizerPreTokenizer, SplitBehaviours) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(split("Removed", text), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated", text), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious", text), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext", text), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous", text), (Strings{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split("Removed", text, true), (Strings{"-", "-", "-"}));
}

TEST(TokenizerPreTokenizer, Llama3RegexWithPcre2) {
  // Llama-3's pattern: case-insensitive contractions, digits in groups of up to three, \s+(?!\S).
  const tok::Regex regex(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  const std::string text = "I'M here:  1234567 caf\xC3\xA9\n\n  x";
  Strings pieces;
  for (const auto& [begin, end] : regex.find_all(text))
    pieces.push_back(text.substr(begin, end - begin));
  EXPECT_EQ(pieces, (Strings{"I", "'M", " here", ":", " ", " ", "123", "456", "7", " caf\xC3\xA9",
                             "\n\n", " ", " x"}));
}

TEST(TokenizerPreTokenizer, MetaspaceSplitsAtReplacement) {
  const tok::Json config = {{"type", "Metaspace"},
                            {"replacement", "\xE2\x96\x81"},
                            {"prepend_scheme", "first"},
                            {"split", true}};
  auto pre = tok::make_pre_tokenizer(config, tok::JsonPath("test.json", "pre_tokenizer"));
  Strings pieces{"Hey friend"};
  pre->pre_tokenize(pieces, true);
  EXPECT_EQ(pieces, (Strings{"\xE2\x96\x81Hey",
                             "\xE2\x96\x81"
                             "friend"}));
  pieces = {"Hey"};
  pre->pre_tokenize(pieces, false);  // "first": only at the start of the text
  EXPECT_EQ(pieces, (Strings{"Hey"}));
}

// A GPT-2 pair of files: byte-level characters ("Ġ" = space) in encoder.json, merges in vocab.bpe.
TEST(Gpt2Tokenizer, TinyEncoderJsonAndVocabBpe) {
  const auto dir = testing::temp_dir("gpt2_tiny");
  testing::write_file(dir / "encoder.json",
                      R"({"h": 0, "i": 1, "\u0120": 2, "hi": 3, "\u0120hi": 4, "<|endoftext|>": 5,
                          "!": 6})");
  testing::write_file(dir / "vocab.bpe", "#version: 0.2\nh i\n\xC4\xA0 hi\n");
  const auto tokenizer = load_tokenizer(dir / "vocab.bpe");
  EXPECT_EQ(tokenizer->kind(), "gpt2 (encoder.json + vocab.bpe)");
  EXPECT_EQ(tokenizer->encode("hi hi!", true), (std::vector<int64_t>{3, 4, 6}));
  EXPECT_EQ(tokenizer->encode("hi<|endoftext|>hi", false), (std::vector<int64_t>{3, 5, 3}));
  EXPECT_EQ(tokenizer->decode({3, 4, 5, 6}, false), "hi hi<|endoftext|>!");
  EXPECT_EQ(tokenizer->decode({3, 4, 5, 6}, true), "hi hi!");
  EXPECT_EQ(tokenizer->bos_id(), 5);
  EXPECT_EQ(tokenizer->eos_id(), 5);

  // encode() is const and may be called from several threads (the BPE cache is shared).
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 200; ++k) results[t] = tokenizer->encode("hi hi hi! hihi", false);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& ids : results) EXPECT_EQ(ids, (std::vector<int64_t>{3, 4, 4, 6, 4, 3}));
}

}  // namespace
}  // namespace ptq
