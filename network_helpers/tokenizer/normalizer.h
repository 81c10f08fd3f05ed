// Normalizers of tokenizer.json ("normalizer" key): text -> text before pre-tokenization, applied
// to each stretch of text between added tokens. Supported types: NFC, NFD, NFKC, NFKD, Lowercase,
// Strip, Prepend, Replace and Sequence of those (what Llama/Mistral/Qwen/GPT-2 family files use).
#pragma once

#include <memory>
#include <string>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

// Builds the normalizer described at `where`; null JSON gives nullptr (no normalization). Unknown
// or malformed entries throw ptq::Error naming the file and key.
std::unique_ptr<Normalizer> make_normalizer(const Json& config, const JsonPath& where);

}  // namespace ptq::tok
