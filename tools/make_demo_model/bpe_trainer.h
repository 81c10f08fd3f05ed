// Byte-level BPE training (GPT-2 style), and the Hugging Face tokenizer.json that describes the
// result.
//
// Training, as in Hugging Face's BpeTrainer: pre-tokenize the sample with GPT-2's regex, count each
// distinct piece, spell it as a sequence of byte symbols, then repeatedly merge the most frequent
// adjacent pair of symbols into a new symbol until the vocabulary has `vocab_size` entries. Pair
// counts are kept up to date incrementally (only the words that contain the merged pair are
// recounted), so a 2k vocabulary over a few megabytes takes seconds. Ties between equally frequent
// pairs go to the pair whose (left, right) symbol strings sort first, so the result depends only on
// the text.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ptq::demo {

struct BpeTrainerOptions {
  int64_t vocab_size = 2048;  // specials + 256 byte symbols + merged symbols
  // Added tokens, given the first ids in this order (the demo model: <|bos|>=0, <|eos|>=1,
  // <|pad|>=2).
  std::vector<std::string> special_tokens = {"<|bos|>", "<|eos|>", "<|pad|>"};
  int64_t min_pair_count = 2;  // stop early rather than merge pairs seen fewer times than this
  bool verbose = true;         // progress lines on stdout
};

// A trained byte-level BPE vocabulary. Symbols are spelled in GPT-2's byte-level alphabet
// (gpt2_pre_tokenizer.h), so none contains a space and a merge can be written as "left right".
struct BpeVocabulary {
  std::vector<std::string> special_tokens;                  // ids 0..S-1
  std::vector<std::string> tokens;                          // id -> symbol (specials first)
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order (first = applied first)
};

// Trains on `text` (valid UTF-8). Throws ptq::Error when vocab_size cannot hold the specials and
// bytes.
BpeVocabulary train_bpe(std::string_view text, const BpeTrainerOptions& options = {});

// tokenizer.json in the structure of Hugging Face's byte-level BPE files (ptq-small-32m's): added
// specials, ByteLevel pre-tokenizer and decoder, a TemplateProcessing post-processor that puts the
// first special (<|bos|>) before every single sequence, and the BPE model with merges as "a b".
nlohmann::ordered_json tokenizer_json(const BpeVocabulary& vocabulary);

}  // namespace ptq::demo
