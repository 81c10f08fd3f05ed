#include "network_helpers/tokenizer/sentencepiece_tokenizer.h"

#include <memory>

#include "framework/error.h"
#include "network_helpers/tokenizer/sentencepiece_bridge_loader.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq {
namespace {

// Memory the module allocated, given back to it.
template <typename T>
std::unique_ptr<T, void (*)(void*)> owned_by(const PtqSentencePieceBridge& bridge, T* memory) {
  return {memory, bridge.release};
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file)
    : bridge_(&tok::sentencepiece_bridge()), file_(model_file) {
  char* error = nullptr;
  const int rc = bridge_->load(model_file.c_str(), &model_, &error);
  const auto message = owned_by(*bridge_, error);
  PTQ_CHECK(rc == 0, "{}: not a loadable SentencePiece model: {}", model_file.string(),
            message ? message.get() : "unknown error");
  vocab_size_ = bridge_->piece_size(model_);
  if (const int bos = bridge_->bos_id(model_); bos >= 0) bos_id_ = bos;
  if (const int eos = bridge_->eos_id(model_); eos >= 0) eos_id_ = eos;
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (model_ != nullptr) bridge_->destroy(model_);
}

void SentencePieceTokenizer::check(int rc, char* error, const char* what) const {
  const auto message = owned_by(*bridge_, error);
  PTQ_CHECK(rc == 0, "{}: sentencepiece {} failed: {}", file_.string(), what,
            message ? message.get() : "unknown error");
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool add_special_tokens) const {
  const std::string valid = tok::to_valid_utf8(text);
  int* pieces = nullptr;
  size_t count = 0;
  char* error = nullptr;
  check(bridge_->encode(model_, valid.data(), valid.size(), &pieces, &count, &error), error, "encode");
  const auto owned = owned_by(*bridge_, pieces);
  std::vector<int64_t> ids;
  ids.reserve(count + 1);
  if (add_special_tokens && bos_id_) ids.push_back(*bos_id_);
  ids.insert(ids.end(), pieces, pieces + count);
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
    char* part = nullptr;
    size_t size = 0;
    char* error = nullptr;
    check(bridge_->decode(model_, run.data(), run.size(), &part, &size, &error), error, "decode");
    text.append(owned_by(*bridge_, part).get(), size);
    run.clear();
  };
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    const int piece = static_cast<int>(id);
    if (bridge_->is_control(model_, piece)) {
      if (skip_special_tokens) continue;
      flush();
      text += token_text(piece);
    } else {
      run.push_back(piece);
    }
  }
  flush();
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return vocab_size_; }

std::optional<int64_t> SentencePieceTokenizer::bos_id() const { return bos_id_; }

std::optional<int64_t> SentencePieceTokenizer::eos_id() const { return eos_id_; }

std::string SentencePieceTokenizer::token_text(int64_t id) const {
  PTQ_CHECK(id >= 0 && id < vocab_size(), "token_text: id {} is outside [0, {}) of {}", id,
            vocab_size(), file_.string());
  char* piece = nullptr;
  size_t size = 0;
  char* error = nullptr;
  check(bridge_->id_to_piece(model_, static_cast<int>(id), &piece, &size, &error), error, "id_to_piece");
  return std::string(owned_by(*bridge_, piece).get(), size);
}

std::optional<int64_t> SentencePieceTokenizer::token_id(std::string_view token) const {
  // PieceToId answers unk for unknown pieces: accept only an exact match.
  const int id = bridge_->piece_to_id(model_, token.data(), token.size());
  if (id < 0 || id >= vocab_size_ || token_text(id) != token) return std::nullopt;
  return id;
}

}  // namespace ptq
