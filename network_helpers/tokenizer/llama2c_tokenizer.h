// llama2.c's tokenizer file (tok*.bin / tokenizer.bin): int32 max_token_length, then per token
// float32 score, int32 byte length, bytes (little-endian; the token count is whatever the file
// holds). Pieces store "▁" as a plain space. Encoding and decoding follow llama2.c run.c exactly:
// BOS = 1, EOS = 2, byte-fallback id = byte + 3, a dummy-prefix " " token, and greedy merging of
// the adjacent pair whose concatenation has the highest score (leftmost on ties).
#pragma once

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/tokenizer.h"

namespace ptq {

class Llama2cTokenizer final : public Tokenizer {
 public:
  static constexpr int64_t kBos = 1;
  static constexpr int64_t kEos = 2;
  static constexpr int64_t kByteOffset = 3;  // id of "<0x00>"

  // Throws ptq::Error naming the file when it is truncated or malformed.
  explicit Llama2cTokenizer(const std::filesystem::path& file);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  // run.c's decode: the space that starts the piece after BOS is dropped, "<0xNN>" pieces become
  // the raw byte. BOS/EOS are written as their pieces unless skip_special_tokens.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::optional<int64_t> bos_id() const override { return kBos; }
  std::optional<int64_t> eos_id() const override { return kEos; }
  std::string token_text(int64_t id) const override;
  std::optional<int64_t> token_id(std::string_view token) const override;
  std::string kind() const override { return "llama2.c"; }

  float score(int64_t id) const { return scores_.at(static_cast<size_t>(id)); }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int64_t> ids_;  // first id of each piece
  std::filesystem::path file_;
};

}  // namespace ptq
