#include "tools/make_demo_model/bpe_encoder.h"

#include <limits>

#include "framework/error.h"

namespace ptq::demo {

namespace {
uint64_t merge_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}
}  // namespace

BpeEncoder::BpeEncoder(const BpeVocabulary& vocabulary) : tokens_(vocabulary.tokens) {
  std::unordered_map<std::string, uint8_t> byte_of_symbol;
  for (int b = 0; b < 256; ++b) byte_of_symbol[byte_symbol(uint8_t(b))] = uint8_t(b);
  const size_t specials = vocabulary.special_tokens.size();
  for (size_t id = 0; id < tokens_.size(); ++id) {
    ids_[tokens_[id]] = int32_t(id);
    if (id < specials) {
      token_bytes_.push_back(tokens_[id]);
      continue;
    }
    // A symbol is a sequence of one- or two-byte UTF-8 code points, each standing for one byte.
    std::string bytes;
    const std::string& s = tokens_[id];
    for (size_t i = 0; i < s.size();) {
      size_t len = (uint8_t(s[i]) < 0x80) ? 1 : 2;
      auto it = byte_of_symbol.find(s.substr(i, len));
      PTQ_CHECK(it != byte_of_symbol.end(),
                "BPE encoder: token {} '{}' is not spelled in byte-level symbols", id, s);
      bytes += char(it->second);
      i += len;
    }
    token_bytes_.push_back(bytes);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = ids_.find(byte_symbol(uint8_t(b)));
    PTQ_CHECK(it != ids_.end(), "BPE encoder: the vocabulary lacks the symbol of byte {}", b);
    byte_ids_[b] = it->second;
  }
  for (size_t rank = 0; rank < vocabulary.merges.size(); ++rank) {
    auto& [left, right] = vocabulary.merges[rank];
    auto l = ids_.find(left), r = ids_.find(right), m = ids_.find(left + right);
    PTQ_CHECK(l != ids_.end() && r != ids_.end() && m != ids_.end(),
              "BPE encoder: merge {} '{} {}' uses a symbol that is not in the vocabulary", rank,
              left, right);
    merges_.emplace(merge_key(l->second, r->second), std::make_pair(int32_t(rank), m->second));
  }
}

std::vector<int32_t> BpeEncoder::encode_piece(const std::string& piece) const {
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  for (char c : piece) ids.push_back(byte_ids_[uint8_t(c)]);
  // Pieces are short (a word and its leading space), so the quadratic scan is cheaper than a heap.
  while (ids.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max(), merged = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = merges_.find(merge_key(ids[i], ids[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        at = i;
      }
    }
    if (merged < 0) break;
    ids[at] = merged;
    ids.erase(ids.begin() + at + 1);
  }
  return ids;
}

std::vector<int32_t> BpeEncoder::encode(std::string_view text) {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3);
  for (auto [begin, end] : pre_tokenizer_.split(text)) {
    std::string piece(text.substr(begin, end - begin));
    auto it = cache_.find(piece);
    if (it == cache_.end()) it = cache_.emplace(piece, encode_piece(piece)).first;
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

std::string BpeEncoder::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    PTQ_CHECK(id >= 0 && size_t(id) < token_bytes_.size(),
              "BPE encoder: token id {} outside the vocabulary of {}", id, token_bytes_.size());
    out += token_bytes_[id];
  }
  return out;
}

}  // namespace ptq::demo
