// Pre-tokenizers of tokenizer.json ("pre_tokenizer" key): split normalized text into the pieces
// that the BPE model encodes one by one (and caches). Supported: ByteLevel (GPT-2 regex and
// byte-to-unicode mapping), Split (Regex or String pattern, every delimiter behaviour, invert),
// Metaspace, Digits, Whitespace, WhitespaceSplit, and Sequence of those.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  // Replaces `pieces` by their split. `at_text_start` says whether pieces[0] begins the whole input
  // text (Metaspace's prepend_scheme "first" only prepends there).
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const;

  // Whether a ByteLevel step is part of this pre-tokenizer (the tokenizer then is byte-level).
  virtual bool is_byte_level() const { return false; }

 protected:
  // Appends the split of one piece to `out`.
  virtual void split(std::string piece, bool at_text_start,
                     std::vector<std::string>& out) const = 0;
};

// Builds the pre-tokenizer described at `where`; null JSON gives nullptr (the whole text is one
// piece).
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& config, const JsonPath& where);

// GPT-2's ByteLevel pre-tokenizer with its built-in regex (encoder.json + vocab.bpe tokenizers).
std::unique_ptr<PreTokenizer> make_gpt2_byte_level_pre_tokenizer();

}  // namespace ptq::tok
