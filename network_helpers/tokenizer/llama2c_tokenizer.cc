#include "network_helpers/tokenizer/llama2c_tokenizer.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>

#include "framework/error.h"
#include "network_helpers/tokenizer/byte_level.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq {

Llama2cTokenizer::Llama2cTokenizer(const std::filesystem::path& file) : file_(file) {
  std::ifstream in(file, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the file", file.string());
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t offset = 0;
  const auto read_bytes = [&](void* dst, size_t n, const char* what) {
    PTQ_CHECK(
        offset + n <= data.size(),
        "{}: truncated llama2.c tokenizer: {} of token {} needs {} bytes at offset {}, the file "
        "has {}",
        file.string(), what, pieces_.size(), n, offset, data.size());
    std::memcpy(dst, data.data() + offset, n);
    offset += n;
  };
  int32_t max_token_length = 0;
  read_bytes(&max_token_length, 4, "the header (max_token_length)");
  PTQ_CHECK(max_token_length > 0 && max_token_length < (1 << 16),
            "{}: not a llama2.c tokenizer: max_token_length is {}, expected 1..65535",
            file.string(), max_token_length);
  while (offset < data.size()) {
    float score = 0;
    int32_t length = 0;
    read_bytes(&score, 4, "the score");
    read_bytes(&length, 4, "the length");
    PTQ_CHECK(length >= 0 && length <= max_token_length,
              "{}: token {} at offset {} has length {}, expected 0..max_token_length ({})",
              file.string(), pieces_.size(), offset - 4, length, max_token_length);
    std::string piece(static_cast<size_t>(length), '\0');
    read_bytes(piece.data(), piece.size(), "the bytes");
    ids_.emplace(piece, static_cast<int64_t>(pieces_.size()));
    pieces_.push_back(std::move(piece));
    scores_.push_back(score);
  }
  PTQ_CHECK(pieces_.size() > kByteOffset + 255,
            "{}: a llama2.c tokenizer needs <unk>, BOS, EOS and 256 byte tokens, the file has {} "
            "tokens",
            file.string(), pieces_.size());
}

std::vector<int64_t> Llama2cTokenizer::encode(std::string_view text,
                                              bool add_special_tokens) const {
  std::vector<int64_t> tokens;
  if (add_special_tokens) tokens.push_back(kBos);
  if (!text.empty()) {  // run.c's dummy prefix (SentencePiece's add_dummy_prefix)
    if (auto it = ids_.find(" "); it != ids_.end()) tokens.push_back(it->second);
  }
  // Code points as run.c groups them: a lead byte and up to three continuation bytes; unknown ones
  // fall back to their bytes.
  const auto is_continuation = [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
  };
  for (size_t pos = 0; pos < text.size();) {
    size_t n = 1;
    while (pos + n < text.size() && n < 4 && is_continuation(text[pos + n])) ++n;
    const std::string character(text.substr(pos, n));
    if (auto it = ids_.find(character); it != ids_.end()) {
      tokens.push_back(it->second);
    } else {
      for (char c : character) tokens.push_back(static_cast<unsigned char>(c) + kByteOffset);
    }
    pos += n;
  }

  // run.c rescans all pairs and merges the best one (highest score, leftmost on ties) until none is
  // left. A heap of candidate pairs, stale entries skipped when popped, makes the same choices in
  // O(n log n): the leftmost position is the same in the original and the current order.
  struct Symbol {
    int64_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({tokens[i], index - 1, index + 1, true});
  }
  if (symbols.empty()) return tokens;
  symbols.back().next = -1;
  struct Candidate {
    float score;
    int32_t pos;
    int64_t left_id, right_id, merged_id;
    bool operator<(const Candidate& o) const {  // max-heap: highest score, then smallest pos
      return score != o.score ? score < o.score : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  const auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const int64_t a = symbols[left].id, b = symbols[right].id;
    auto it = ids_.find(pieces_[a] + pieces_[b]);
    // run.c: best_score starts at -1e10 and must be beaten strictly.
    if (it != ids_.end() && scores_[it->second] > -1e10f) {
      queue.push({scores_[it->second], left, a, b, it->second});
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0 || left.id != top.left_id) continue;
    Symbol& right = symbols[left.next];
    if (right.id != top.right_id) continue;
    left.id = top.merged_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  tokens.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) tokens.push_back(symbols[i].id);
  return tokens;
}

std::string Llama2cTokenizer::decode(const std::vector<int64_t>& ids,
                                     bool skip_special_tokens) const {
  std::string bytes;
  int64_t prev = -1;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const bool special = id == kBos || id == kEos;
    if (!(special && skip_special_tokens)) {
      std::string_view piece = pieces_[id];
      if (prev == kBos && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      if (auto byte = tok::parse_byte_token(piece)) {
        bytes.push_back(static_cast<char>(*byte));
      } else {
        bytes.append(piece);
      }
    }
    prev = id;
  }
  return tok::to_valid_utf8(bytes);
}

std::string Llama2cTokenizer::token_text(int64_t id) const {
  PTQ_CHECK(id >= 0 && id < vocab_size(), "token_text: id {} is outside [0, {}) of {}", id,
            vocab_size(), file_.string());
  return pieces_[id];
}

std::optional<int64_t> Llama2cTokenizer::token_id(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ptq
