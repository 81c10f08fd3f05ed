#include "network_helpers/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "framework/error.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()), file_(model_file) {
  const auto status = processor_->Load(model_file.string());
  PTQ_CHECK(status.ok(), "{}: not a loadable SentencePiece model: {}", model_file.string(),
            status.ToString());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool add_special_tokens) const {
  std::vector<int> pieces;
  const auto status = processor_->Encode(tok::to_valid_utf8(text), &pieces);
  PTQ_CHECK(status.ok(), "{}: sentencepiece encode failed: {}", file_.string(), status.ToString());
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 1);
  if (add_special_tokens && processor_->bos_id() >= 0) ids.push_back(processor_->bos_id());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids,
                                           bool skip_special_tokens) const {
  // Runs of ordinary ids go through sentencepiece (which joins pieces and turns "▁" into spaces);
  // control ids in between are written out as their text when they are not skipped.
  std::string text;
  std::vector<int> run;
  const auto flush = [&] {
    if (run.empty()) return;
    std::string part;
    const auto status = processor_->Decode(run, &part);
    PTQ_CHECK(status.ok(), "{}: sentencepiece decode failed: {}", file_.string(),
              status.ToString());
    text += part;
    run.clear();
  };
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const int piece = static_cast<int>(id);
    if (processor_->IsControl(piece)) {
      if (skip_special_tokens) continue;
      flush();
      text += processor_->IdToPiece(piece);
    } else {
      run.push_back(piece);
    }
  }
  flush();
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::optional<int64_t> SentencePieceTokenizer::bos_id() const {
  if (processor_->bos_id() < 0) return std::nullopt;
  return processor_->bos_id();
}

std::optional<int64_t> SentencePieceTokenizer::eos_id() const {
  if (processor_->eos_id() < 0) return std::nullopt;
  return processor_->eos_id();
}

std::string SentencePieceTokenizer::token_text(int64_t id) const {
  PTQ_CHECK(id >= 0 && id < vocab_size(), "token_text: id {} is outside [0, {}) of {}", id,
            vocab_size(), file_.string());
  return processor_->IdToPiece(static_cast<int>(id));
}

std::optional<int64_t> SentencePieceTokenizer::token_id(std::string_view token) const {
  // PieceToId answers unk for unknown pieces: accept only an exact match.
  const int id = processor_->PieceToId(token);
  if (id < 0 || processor_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

}  // namespace ptq
