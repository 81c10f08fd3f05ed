// The BPE model of Hugging Face tokenizer.json (and of GPT-2's encoder.json + vocab.bpe): a
// pre-token is split into characters, then the adjacent pair with the lowest merge rank is merged
// (leftmost first on ties) until no pair has a rank. Merges are looked up by the pair of token ids
// in one hash map, and results are cached per pre-token: prose repeats its words, so most
// pre-tokens are cache hits.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;  // emitted for characters outside the vocabulary
  bool fuse_unk = false;                 // consecutive unknown characters give one unk
  bool byte_fallback = false;            // unknown characters become their "<0xNN>" byte tokens
  bool ignore_merges = false;            // a pre-token found whole in the vocabulary is one token
};

class BpeModel {
 public:
  // `merges[i]` has rank i. Both halves of each merge and their concatenation must be in `vocab`;
  // otherwise ptq::Error "<where(i)>: ...", where `where` names the entry (file and key or line).
  BpeModel(std::unordered_map<std::string, int64_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::function<std::string(size_t)>& where);

  // Appends the ids of one pre-token.
  void encode(std::string_view pre_token, std::vector<int64_t>& out) const;

  std::optional<int64_t> token_id(std::string_view token) const;
  // The vocabulary entry of `id`, or nullptr for an id that is not in the vocabulary.
  const std::string* token_text(int64_t id) const;
  int64_t id_bound() const { return static_cast<int64_t>(id_to_token_.size()); }  // max id + 1

 private:
  struct Merge {
    uint32_t rank;
    int64_t merged_id;
  };
  static uint64_t pair_key(int64_t left, int64_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  }

  // The BPE of one pre-token, without cache.
  std::vector<int64_t> merge_word(std::string_view word) const;
  // Appends the ids for a character outside the vocabulary (byte fallback, unk or nothing).
  void encode_unknown(std::string_view character, std::vector<int64_t>& out,
                      bool* last_was_unk) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<char32_t, int64_t>
      char_ids_;  // single-code-point entries, for the first split
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  std::optional<int64_t> unk_id_;
  int64_t byte_ids_[256];  // "<0xNN>" ids for byte fallback, -1 when absent

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

// A vocabulary object {"token": id, ...} (tokenizer.json "model.vocab", GPT-2 encoder.json).
std::unordered_map<std::string, int64_t> read_vocab_json(const Json& vocab, const JsonPath& where);

}  // namespace ptq::tok
