#include "network_helpers/tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <queue>

#include "framework/error.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {
// Pre-tokens longer than this are rarely repeated (and Mistral-style tokenizers have no
// pre-tokenizer, so a whole paragraph is one pre-token): they are not cached. The cache is dropped
// when it gets large.
constexpr size_t kMaxCachedLength = 256;
constexpr size_t kMaxCacheEntries = 1 << 20;
// Unused ids allowed below the largest vocabulary id (see the constructor).
constexpr int64_t kMaxVocabularyHoles = int64_t{1} << 20;
}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int64_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::function<std::string(size_t)>& where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  int64_t bound = 0;
  for (const auto& [token, id] : vocab_) {
    PTQ_CHECK(id >= 0 && id < (int64_t{1} << 31), "vocabulary entry '{}' has an invalid id {}",
              token, id);
    bound = std::max(bound, id + 1);
  }
  // The id -> token table has `bound` entries: a vocabulary with a few tokens but an id of 2e9
  // would allocate 64 GB. Real vocabularies are dense (ids 0..n-1); allow generous holes, not that.
  const int64_t max_bound = static_cast<int64_t>(vocab_.size()) + kMaxVocabularyHoles;
  PTQ_CHECK(bound <= max_bound,
            "the vocabulary has {} tokens but ids up to {}; ids must be dense (at most {} unused "
            "ids below the largest)",
            vocab_.size(), bound - 1, kMaxVocabularyHoles);
  id_to_token_.resize(static_cast<size_t>(bound));
  has_id_.resize(static_cast<size_t>(bound));
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    has_id_[id] = true;
    const size_t n = token.empty() ? 0 : utf8_char_length(token, 0);
    if (n != 0 && n == token.size()) char_ids_[decode_code_point(token, 0, n)] = id;
  }

  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [left, right] = merges[i];
    const auto find = [&](const std::string& token) {
      auto it = vocab_.find(token);
      PTQ_CHECK(it != vocab_.end(), "{}: merge \"{} {}\": '{}' is not in the vocabulary", where(i),
                left, right, token);
      return it->second;
    };
    const int64_t left_id = find(left), right_id = find(right), merged_id = find(left + right);
    // A repeated pair keeps its last rank, as Hugging Face's hash map does.
    merges_[pair_key(left_id, right_id)] = Merge{static_cast<uint32_t>(i), merged_id};
  }

  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

std::optional<int64_t> BpeModel::token_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::token_text(int64_t id) const {
  if (id < 0 || id >= id_bound() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::encode(std::string_view pre_token, std::vector<int64_t>& out) const {
  if (pre_token.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = token_id(pre_token)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = pre_token.size() <= kMaxCachedLength;
  std::string key;
  if (cacheable) {
    key.assign(pre_token);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> ids = merge_word(pre_token);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

void BpeModel::encode_unknown(std::string_view character, std::vector<int64_t>& out,
                              bool* last_was_unk) const {
  if (options_.byte_fallback) {
    bool all_bytes = true;
    for (char c : character) all_bytes &= byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (all_bytes) {
      for (char c : character) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      *last_was_unk = false;
      return;
    }
  }
  if (!unk_id_) return;  // Hugging Face drops the character when there is no unk token
  if (!(options_.fuse_unk && *last_was_unk)) out.push_back(*unk_id_);
  *last_was_unk = true;
}

std::vector<int64_t> BpeModel::merge_word(std::string_view word) const {
  // The word as a doubly linked list of symbols; a symbol with id -1 is a character outside the
  // vocabulary, which takes part in no merge.
  struct Symbol {
    int64_t id;
    int32_t prev, next;
    uint32_t begin,
        length;  // bytes of `word` it covers; length 0 once merged into its left neighbour
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t pos = 0; pos < word.size();) {
    const size_t n = utf8_char_length(word, pos);
    int64_t id = -1;
    if (n > 0) {
      auto it = char_ids_.find(decode_code_point(word, pos, n));
      if (it != char_ids_.end()) id = it->second;
    }
    const auto index = static_cast<int32_t>(symbols.size());
    const size_t length = n > 0 ? n : 1;  // a stray byte (not reached: input is valid UTF-8)
    symbols.push_back(
        {id, index - 1, index + 1, static_cast<uint32_t>(pos), static_cast<uint32_t>(length)});
    pos += length;
  }
  symbols.back().next = -1;

  // Candidate merges, lowest rank first, then leftmost. Entries go stale when a neighbour merges;
  // they are checked against the current list when popped (as Hugging Face's Word::merge_all does).
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int64_t merged_id;
    bool operator<(const Candidate& o) const {  // priority_queue pops the largest: invert
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  const auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0 || symbols[left].id < 0 || symbols[right].id < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.length == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (left.id < 0 || right.id < 0) continue;
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;  // stale
    left.id = top.merged_id;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }

  std::vector<int64_t> ids;
  bool last_was_unk = false;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      ids.push_back(symbols[i].id);
      last_was_unk = false;
    } else {
      encode_unknown(word.substr(symbols[i].begin, symbols[i].length), ids, &last_was_unk);
    }
  }
  return ids;
}

std::unordered_map<std::string, int64_t> read_vocab_json(const Json& vocab, const JsonPath& where) {
  if (!vocab.is_object()) where.fail_expected("an object token -> id", vocab);
  std::unordered_map<std::string, int64_t> tokens;
  tokens.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      (where / token).fail_expected("an id >= 0", id);
    tokens.emplace(token, id.get<int64_t>());
  }
  return tokens;
}

}  // namespace ptq::tok
