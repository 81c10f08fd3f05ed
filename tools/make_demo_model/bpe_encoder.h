// Encodes text with a trained BpeVocabulary, the way Hugging Face's BPE model does (GPT-2
// pre-tokens, then within each piece repeatedly merge the adjacent pair of lowest merge rank,
// leftmost first), and decodes ids back to bytes. Used to tokenize the training text; the written
// tokenizer.json is checked against ptq's own tokenizer library, which must give the same ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tools/make_demo_model/bpe_trainer.h"
#include "tools/make_demo_model/gpt2_pre_tokenizer.h"

namespace ptq::demo {

class BpeEncoder {
 public:
  explicit BpeEncoder(const BpeVocabulary& vocabulary);

  // Token ids of `text` (valid UTF-8), no special tokens added. Pieces are cached, so encoding a
  // long text costs little more than pre-tokenizing it.
  std::vector<int32_t> encode(std::string_view text);
  // The bytes the ids stand for; special tokens are written as their text.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const { return int64_t(tokens_.size()); }

 private:
  std::vector<int32_t> encode_piece(const std::string& piece) const;  // raw bytes of one piece

  Gpt2PreTokenizer pre_tokenizer_;
  std::vector<std::string> tokens_;               // id -> byte-level symbol
  std::vector<std::string> token_bytes_;          // id -> the bytes it stands for
  std::unordered_map<std::string, int32_t> ids_;  // byte-level symbol -> id
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>
      merges_;  // (left id, right id) -> (rank, id)
  int32_t byte_ids_[256];
  std::unordered_map<std::string, std::vector<int32_t>> cache_;  // raw piece -> ids
};

}  // namespace ptq::demo
