// A SentencePiece model file (tokenizer.model, e.g. Llama-2), encoded and decoded by the
// sentencepiece library itself. Like Hugging Face's LlamaTokenizer, encode(add_special_tokens=true)
// prepends BOS. Control tokens written in text ("<s>") are ordinary text for sentencepiece and stay
// so here.
#pragma once

#include <filesystem>
#include <memory>

#include "framework/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ptq {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Throws ptq::Error naming the file when it cannot be loaded.
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  // Control tokens (<s>, </s>) are written as their piece text unless skip_special_tokens; ids
  // outside the vocabulary are skipped.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> bos_id() const override;
  std::optional<int64_t> eos_id() const override;
  std::string token_text(int64_t id) const override;
  std::optional<int64_t> token_id(std::string_view token) const override;
  std::string kind() const override { return "sentencepiece"; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::filesystem::path file_;
};

}  // namespace ptq
