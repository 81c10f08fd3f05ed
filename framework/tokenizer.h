// The tokenizer interface every model family uses. Implementations (Hugging Face tokenizer.json BPE,
// sentencepiece, GPT-2 encoder.json/vocab.bpe, llama2.c tok*.bin) live in network_helpers/tokenizer and
// are built by ptq::load_tokenizer (network_helpers/tokenizer/load_tokenizer.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ptq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. add_special_tokens applies the tokenizer's post-processor (e.g. prepends BOS), exactly
  // like Hugging Face `tokenizer.encode(text, add_special_tokens=...)`. Special tokens written inside the
  // text (e.g. "<|eot_id|>") are recognised as such, as Hugging Face does for added tokens.
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const = 0;

  // Ids -> text, like Hugging Face `tokenizer.decode(ids, skip_special_tokens=...)`.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const = 0;

  virtual int64_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  virtual std::string token_text(int64_t id) const = 0;  // the vocabulary entry as stored
  virtual std::optional<int64_t> token_id(std::string_view token) const = 0;
  virtual std::string kind() const = 0;  // e.g. "hf-bpe (ByteLevel)", "sentencepiece"
};

}  // namespace ptq
