// GPT-2's byte-level pre-tokenization, as Hugging Face's ByteLevel pre-tokenizer (use_regex: true)
// does it: split text with GPT-2's regex, then spell each piece's bytes with GPT-2's byte -> code
// point map. The demo-model tools use their own copy (not network_helpers/tokenizer) so that the
// tokenizer they train and the one the library loads are two independent implementations that check
// each other.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ptq::demo {

// The GPT-2 pre-tokenizer pattern (OpenAI encoder.py; HF ByteLevel): contractions, letter runs,
// digit runs, punctuation runs (each optionally led by one space), and whitespace. `\s+(?!\S)`
// leaves the last space of a run to the following word, so " the" stays one piece.
extern const char* const kGpt2SplitPattern;

class Gpt2PreTokenizer {
 public:
  Gpt2PreTokenizer();  // compiles kGpt2SplitPattern with PCRE2 (UTF + UCP, JIT when available)

  // Byte spans [begin, end) of the pieces of `text`, in order; they tile the text. Throws
  // ptq::Error when `text` is not valid UTF-8 (naming the byte offset).
  std::vector<std::pair<size_t, size_t>> split(std::string_view text) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8
};

// GPT-2's bytes_to_unicode: the printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves, the other 68 bytes map to U+0100.. in byte order (space -> 'Ġ' U+0120, '\n' -> 'Ċ').
char32_t byte_to_code_point(uint8_t byte);
// The UTF-8 spelling of byte_to_code_point(byte): the symbol of that byte in a byte-level
// vocabulary.
const std::string& byte_symbol(uint8_t byte);
// Every byte of `bytes` replaced by its symbol.
std::string to_byte_level(std::string_view bytes);

}  // namespace ptq::demo
