// The tokenizer.json pipeline on tiny files written by the tests (no shared data needed): BPE merge
// order, ignore_merges, added tokens inside text, byte fallback, post-processor and
// tokenizer_config.json.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "network_helpers/tokenizer/hf_tokenizer_json.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

using nlohmann::json;
using Ids = std::vector<int64_t>;

// A tokenizer.json with a BPE model over `vocab` and `merges` and no other stage.
json bpe_json(json vocab, json merges) {
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

std::shared_ptr<Tokenizer> load_json(const std::string& test, const json& tokenizer,
                                     const json* config = nullptr) {
  const auto dir = testing::temp_dir(test);
  testing::write_file(dir / "tokenizer.json", tokenizer.dump());
  if (config) testing::write_file(dir / "tokenizer_config.json", config->dump());
  return load_tokenizer(dir);
}

const json kAbcVocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};

TEST(HfBpe, MergesByRankNotByPosition) {
  // "b c" has the lowest rank, so "abc" becomes a + bc, then abc.
  const auto tokenizer = load_json("rank1", bpe_json(kAbcVocab, {"b c", "a b", "a bc"}));
  EXPECT_EQ(tokenizer->encode("abc", false), (Ids{5}));
  EXPECT_EQ(tokenizer->encode("abab", false), (Ids{3, 3}));
  // Without "a bc" the result stops at a + bc (not ab + c).
  const auto partial = load_json("rank2", bpe_json(kAbcVocab, {"b c", "a b"}));
  EXPECT_EQ(partial->encode("abc", false), (Ids{0, 4}));
  // Merges as [a, b] pairs (tokenizers >= 0.20) read the same.
  const auto pairs = load_json(
      "rank3",
      bpe_json(kAbcVocab, json::array({json::array({"a", "b"}), json::array({"b", "c"})})));
  EXPECT_EQ(pairs->encode("abc", false), (Ids{3, 2}));
  EXPECT_EQ(pairs->kind(), "hf-bpe");
}

TEST(HfBpe, EqualRanksMergeLeftmostFirst) {
  const auto tokenizer = load_json("leftmost", bpe_json({{"a", 0}, {"aa", 1}}, {"a a"}));
  EXPECT_EQ(tokenizer->encode("aaa", false), (Ids{1, 0}));
  EXPECT_EQ(tokenizer->encode("aaaa", false), (Ids{1, 1}));
}

TEST(HfBpe, IgnoreMergesTakesWholeVocabularyWords) {
  json file = bpe_json(kAbcVocab, {"a b"});  // no merge path to "abc"
  EXPECT_EQ(load_json("ignore0", file)->encode("abc", false), (Ids{3, 2}));
  file["model"]["ignore_merges"] = true;
  EXPECT_EQ(load_json("ignore1", file)->encode("abc", false), (Ids{5}));
  EXPECT_EQ(load_json("ignore2", file)->encode("abcabc", false), (Ids{3, 2, 3, 2}));
}

// Added tokens are cut out of the text before pre-tokenization; lstrip/rstrip swallow the spaces
// next to them; the longest added token wins.
TEST(HfBpe, AddedTokensInsideText) {
  json vocab = kAbcVocab;
  vocab[" "] = 6;
  json file = bpe_json(vocab, {"a b"});
  file["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}};
  file["added_tokens"] = {
      {{"id", 7}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
      {{"id", 8}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}},
      {{"id", 9},
       {"content", "<x>"},
       {"special", false},
       {"lstrip", true},
       {"rstrip", true},
       {"normalized", false}}};
  const auto tokenizer = load_json("added", file);
  EXPECT_EQ(tokenizer->encode("ab<|end|>c", false), (Ids{3, 7, 2}));
  EXPECT_EQ(tokenizer->encode("ab <|end|> c", false), (Ids{3, 6, 7, 6, 2}));
  EXPECT_EQ(tokenizer->encode("ab  <x>  c", false), (Ids{3, 9, 2}));
  EXPECT_EQ(tokenizer->encode("<|endoftext|><|end|>", false), (Ids{8, 7}));
  EXPECT_EQ(tokenizer->encode("<|end", false), (Ids{}));  // '<', '|', ... are not in the vocabulary
  EXPECT_EQ(tokenizer->token_id("<x>"), 9);
  EXPECT_EQ(tokenizer->token_text(7), "<|end|>");
  EXPECT_EQ(tokenizer->vocab_size(), 10);
  // No decoder: Hugging Face joins the tokens with spaces. Special tokens can be skipped.
  EXPECT_EQ(tokenizer->decode({3, 7, 2}, false), "ab <|end|> c");
  EXPECT_EQ(tokenizer->decode({3, 7, 2, 9}, true), "ab c <x>");
  EXPECT_EQ(tokenizer->decode({3, 1000, 2}, true), "ab c");  // unknown ids are skipped
}

TEST(HfBpe, SingleWordAddedTokensOnlyMatchWholeWords) {
  json vocab = kAbcVocab;
  vocab[" "] = 6;
  json file = bpe_json(vocab, {"a b"});
  file["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}};
  file["added_tokens"] = {
      {{"id", 7}, {"content", "cc"}, {"single_word", true}, {"normalized", false}}};
  const auto tokenizer = load_json("single_word", file);
  EXPECT_EQ(tokenizer->encode("ab cc", false), (Ids{3, 6, 7}));
  EXPECT_EQ(tokenizer->encode("abcc", false), (Ids{3, 2, 2}));
}

// SentencePiece-style BPE as Mistral's tokenizer.json writes it: "▁" prefix and spaces, byte
// fallback, a BOS template, and the Replace/ByteFallback/Fuse/Strip decoder.
json mistral_like() {
  const json vocab = {{"<unk>", 0}, {"<s>", 1},   {"</s>", 2}, {"<0xC3>", 3}, {"<0xA9>", 4},
                      {"▁", 5},     {"c", 6},     {"a", 7},    {"f", 8},      {"▁c", 9},
                      {"af", 10},   {"▁caf", 11}, {"d", 12},   {"▁d", 13}};
  json file = bpe_json(vocab, {"▁ c", "a f", "▁c af", "▁ d"});
  file["model"]["byte_fallback"] = true;
  file["model"]["unk_token"] = "<unk>";
  file["model"]["fuse_unk"] = true;
  file["added_tokens"] = {
      {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
      {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}};
  file["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "▁"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
  file["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  file["decoder"] = {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}},
                       {{"type", "Fuse"}},
                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  return file;
}

TEST(HfBpe, ByteFallbackAndSentencePieceStyleDecoding) {
  const auto tokenizer = load_json("byte_fallback", mistral_like());
  EXPECT_EQ(tokenizer->kind(), "hf-bpe (byte fallback)");
  EXPECT_EQ(tokenizer->bos_id(), 1);  // from the template, as there is no tokenizer_config.json
  // "café" -> "▁café": ▁caf + é, which is not in the vocabulary -> <0xC3> <0xA9>.
  EXPECT_EQ(tokenizer->encode("café", true), (Ids{1, 11, 3, 4}));
  EXPECT_EQ(tokenizer->decode({1, 11, 3, 4}, true), "café");
  EXPECT_EQ(tokenizer->decode({1, 11, 3, 4}, false), "<s> café");
  // '€' has no byte tokens either: <unk>, and two in a row fuse into one.
  EXPECT_EQ(tokenizer->encode("d€€d", false), (Ids{13, 0, 12}));
  // Added tokens split the text first; each stretch gets its own "▁".
  EXPECT_EQ(tokenizer->encode("d</s>d", false), (Ids{13, 2, 13}));
  EXPECT_EQ(tokenizer->encode("", true), (Ids{1}));
  // A lone continuation byte decodes to U+FFFD.
  EXPECT_EQ(tokenizer->decode({9, 4}, true), "c\xEF\xBF\xBD");
}

TEST(HfBpe, TokenizerConfigSetsSpecialTokens) {
  json file = mistral_like();
  file["post_processor"] = nullptr;
  // bos/eos written as objects, legacy add_bos_token/add_eos_token add them, cleanup on decode.
  const json config = {{"bos_token", {{"content", "<s>"}, {"__type", "AddedToken"}}},
                       {"eos_token", "</s>"},
                       {"add_bos_token", true},
                       {"add_eos_token", true},
                       {"clean_up_tokenization_spaces", true}};
  const auto tokenizer = load_json("config", file, &config);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->encode("d", true), (Ids{1, 13, 2}));
  EXPECT_EQ(tokenizer->encode("d", false), (Ids{13}));
  EXPECT_EQ(clean_up_tokenization("a , b . I 'm here ! don 't"), "a, b. I'm here! don 't");

  // The template already adds BOS: add_bos_token does not add a second one.
  const json bos_only = {{"bos_token", "<s>"}, {"add_bos_token", true}};
  EXPECT_EQ(load_json("config2", mistral_like(), &bos_only)->encode("d", true), (Ids{1, 13}));
}

}  // namespace
}  // namespace ptq
