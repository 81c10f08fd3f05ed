// A SentencePiece model file (tokenizer.model, e.g. Llama-2), encoded and decoded by the
// sentencepiece library itself, reached through libptq_sentencepiece.so (sentencepiece_bridge.h says
// why it is a module of its own). Like Hugging Face's LlamaTokenizer, encode(add_special_tokens=true)
// prepends BOS. Control tokens written in text ("<s>") are ordinary text for sentencepiece and stay
// so here.
#pragma once

#include <filesystem>

#include "framework/tokenizer.h"

struct PtqSentencePieceBridge;

namespace ptq {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Throws ptq::Error naming the file when it cannot be loaded.
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

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
  // Throws ptq::Error naming the file and `what` when a bridge call returned `rc` != 0.
  void check(int rc, char* error, const char* what) const;

  const PtqSentencePieceBridge* bridge_;
  void* model_ = nullptr;  // the module's processor
  std::filesystem::path file_;
  // Asked of the module once, at load (encode asks for BOS on every call).
  int64_t vocab_size_ = 0;
  std::optional<int64_t> bos_id_, eos_id_;
};

}  // namespace ptq
