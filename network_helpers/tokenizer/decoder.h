// Decoders of tokenizer.json ("decoder" key): token strings -> text. Supported: ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Metaspace and Sequence of those.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

// One token on its way through the decoder chain. Added tokens ("<|eot_id|>") are kept out of the
// byte-level mapping, as transformers does, so they come out as written.
struct DecodePiece {
  std::string text;
  bool added = false;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<DecodePiece>& pieces) const = 0;
};

// Builds the decoder described at `where`; null JSON gives nullptr (tokens are joined with spaces).
std::unique_ptr<Decoder> make_decoder(const Json& config, const JsonPath& where);

// The ByteLevel decoder (GPT-2 encoder.json + vocab.bpe tokenizers).
std::unique_ptr<Decoder> make_byte_level_decoder();

}  // namespace ptq::tok
