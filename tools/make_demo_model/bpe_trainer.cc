#include "tools/make_demo_model/bpe_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "framework/error.h"
#include "tools/make_demo_model/gpt2_pre_tokenizer.h"

namespace ptq::demo {
namespace {

using SymbolId = int32_t;
using PairKey = uint64_t;  // (left << 32) | right

PairKey pair_key(SymbolId left, SymbolId right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}
SymbolId left_of(PairKey key) { return SymbolId(key >> 32); }
SymbolId right_of(PairKey key) { return SymbolId(key & 0xFFFFFFFFu); }

// One distinct pre-token piece of the sample: its current spelling in symbols and how often it
// occurs.
struct Word {
  std::vector<SymbolId> symbols;
  int64_t count = 0;
};

// The state of one training run: symbols, words, pair counts and the index from a pair to the words
// that contain it. Entries of that index may be stale (the word no longer has the pair); merge()
// checks.
class Trainer {
 public:
  explicit Trainer(const BpeTrainerOptions& options) : options_(options) {}

  BpeVocabulary run(std::string_view text);

 private:
  void count_words(std::string_view text);
  void count_pairs();
  void merge(PairKey best, SymbolId merged);
  // Heap order: higher count first; among equal counts the pair whose strings sort first.
  bool after(const std::pair<int64_t, PairKey>& a, const std::pair<int64_t, PairKey>& b) const {
    if (a.first != b.first) return a.first < b.first;
    const std::string &al = symbols_[left_of(a.second)], &bl = symbols_[left_of(b.second)];
    if (al != bl) return al > bl;
    return symbols_[right_of(a.second)] > symbols_[right_of(b.second)];
  }

  const BpeTrainerOptions& options_;
  std::vector<std::string> symbols_;  // symbol id -> byte-level string (ids are not token ids)
  std::unordered_map<std::string, SymbolId> symbol_ids_;
  std::vector<Word> words_;
  std::unordered_map<PairKey, int64_t> pair_counts_;
  std::unordered_map<PairKey, std::vector<int32_t>> pair_words_;
  std::vector<PairKey> touched_;  // pairs whose count grew during the last merge (to re-queue)
};

void Trainer::count_words(std::string_view text) {
  Gpt2PreTokenizer pre_tokenizer;
  std::unordered_map<std::string_view, int64_t> counts;
  for (auto [begin, end] : pre_tokenizer.split(text)) ++counts[text.substr(begin, end - begin)];
  // Sorted, so that word order (and everything after it) does not depend on hashing.
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  words_.reserve(sorted.size());
  for (auto& [piece, count] : sorted) {
    Word word;
    word.count = count;
    for (char c : piece)
      word.symbols.push_back(SymbolId(uint8_t(c)));  // symbol id of a byte = the byte
    words_.push_back(std::move(word));
  }
}

void Trainer::count_pairs() {
  for (int32_t w = 0; w < int32_t(words_.size()); ++w) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      PairKey key = pair_key(word.symbols[i], word.symbols[i + 1]);
      pair_counts_[key] += word.count;
      pair_words_[key].push_back(w);
    }
  }
}

// Replaces every (left, right) in the words that contain it, left to right without overlap (so
// "a a a" becomes "aa a", as Hugging Face's word merge does). Each touched word's pairs are
// subtracted before and added back after, which keeps every count exact without case analysis at
// the edges.
void Trainer::merge(PairKey best, SymbolId merged) {
  const SymbolId left = left_of(best), right = right_of(best);
  std::vector<int32_t> where = std::move(pair_words_[best]);
  pair_words_.erase(best);
  std::sort(where.begin(), where.end());
  where.erase(std::unique(where.begin(), where.end()), where.end());
  std::unordered_set<PairKey> grown;
  for (int32_t w : where) {
    Word& word = words_[w];
    auto& s = word.symbols;
    bool present = false;
    for (size_t i = 0; i + 1 < s.size() && !present; ++i)
      present = s[i] == left && s[i + 1] == right;
    if (!present) continue;  // a stale index entry
    for (size_t i = 0; i + 1 < s.size(); ++i) pair_counts_[pair_key(s[i], s[i + 1])] -= word.count;
    std::vector<SymbolId> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
        out.push_back(merged);
        i += 2;
      } else {
        out.push_back(s[i]);
        ++i;
      }
    }
    s = std::move(out);
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      PairKey key = pair_key(s[i], s[i + 1]);
      pair_counts_[key] += word.count;
      // Only pairs with the new symbol are new to this word; the others are already indexed.
      if (s[i] == merged || s[i + 1] == merged) {
        pair_words_[key].push_back(w);
        grown.insert(key);
      }
    }
  }
  pair_counts_.erase(best);
  touched_.assign(grown.begin(), grown.end());
}

BpeVocabulary Trainer::run(std::string_view text) {
  const int64_t specials = int64_t(options_.special_tokens.size());
  PTQ_CHECK(options_.vocab_size >= specials + 256,
            "BPE trainer: vocab_size {} cannot hold {} special tokens and the 256 byte symbols",
            options_.vocab_size, specials);
  auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < 256; ++b) {
    symbols_.push_back(byte_symbol(uint8_t(b)));
    symbol_ids_[symbols_.back()] = b;
  }
  count_words(text);
  count_pairs();
  if (options_.verbose)
    fmt::print("bpe: {} bytes, {} distinct pre-tokens, {} distinct pairs\n", text.size(),
               words_.size(), pair_counts_.size());

  auto cmp = [this](const std::pair<int64_t, PairKey>& a, const std::pair<int64_t, PairKey>& b) {
    return after(a, b);
  };
  std::priority_queue<std::pair<int64_t, PairKey>, std::vector<std::pair<int64_t, PairKey>>,
                      decltype(cmp)>
      queue(cmp);
  for (auto& [key, count] : pair_counts_)
    if (count > 0) queue.emplace(count, key);

  BpeVocabulary vocab;
  vocab.special_tokens = options_.special_tokens;
  // The byte symbols take the ids after the specials in code point order, as Hugging Face's trainer
  // sorts its initial alphabet ('!' first, 'Ń' U+0143 last).
  std::vector<std::string> alphabet(symbols_.begin(), symbols_.end());
  std::sort(alphabet.begin(), alphabet.end(), [](const std::string& a, const std::string& b) {
    // Code points below U+0800 sort like their UTF-8 bytes, except that one-byte ones come first.
    if (a.size() != b.size()) return a.size() < b.size();
    return a < b;
  });
  std::unordered_set<std::string> in_vocab;
  vocab.tokens = vocab.special_tokens;
  for (auto& symbol : alphabet) {
    vocab.tokens.push_back(symbol);
    in_vocab.insert(symbol);
  }

  while (int64_t(vocab.tokens.size()) < options_.vocab_size && !queue.empty()) {
    auto [count, key] = queue.top();
    queue.pop();
    auto it = pair_counts_.find(key);
    int64_t current = it == pair_counts_.end() ? 0 : it->second;
    if (current != count) {  // counts only shrink outside `touched_`: re-queue at the true count
      if (current > 0) queue.emplace(current, key);
      continue;
    }
    if (count < options_.min_pair_count) break;
    // Copies: symbols_ may grow (and move its strings) below.
    const std::string left = symbols_[left_of(key)];
    const std::string right = symbols_[right_of(key)];
    std::string joined = left + right;
    vocab.merges.emplace_back(left, right);
    // Two different pairs can spell the same string ("ab"+"c", "a"+"bc"); like Hugging Face, both
    // merges are kept and produce the one symbol, which enters the vocabulary once.
    SymbolId merged;
    if (auto found = symbol_ids_.find(joined); found != symbol_ids_.end()) {
      merged = found->second;
    } else {
      merged = SymbolId(symbols_.size());
      symbols_.push_back(joined);
      symbol_ids_[joined] = merged;
    }
    if (in_vocab.insert(joined).second) vocab.tokens.push_back(joined);
    merge(key, merged);
    for (PairKey grown : touched_) {
      auto c = pair_counts_.find(grown);
      if (c != pair_counts_.end() && c->second > 0) queue.emplace(c->second, grown);
    }
    if (options_.verbose && vocab.merges.size() % 500 == 0)
      fmt::print("bpe: {} merges, last '{}' + '{}' ({} occurrences)\n", vocab.merges.size(), left,
                 right, count);
  }
  if (options_.verbose) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("bpe: vocabulary of {} tokens ({} merges) in {:.1f} s\n", vocab.tokens.size(),
               vocab.merges.size(), seconds);
  }
  return vocab;
}

}  // namespace

BpeVocabulary train_bpe(std::string_view text, const BpeTrainerOptions& options) {
  Trainer trainer(options);
  return trainer.run(text);
}

nlohmann::ordered_json tokenizer_json(const BpeVocabulary& vocabulary) {
  using Json = nlohmann::ordered_json;
  PTQ_CHECK(!vocabulary.special_tokens.empty(),
            "tokenizer.json: the vocabulary has no special tokens; the "
            "post-processor needs the first one as <|bos|>");
  Json added = Json::array();
  for (size_t i = 0; i < vocabulary.special_tokens.size(); ++i)
    added.push_back({{"id", i},
                     {"content", vocabulary.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  const std::string& bos = vocabulary.special_tokens[0];
  Json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  Json decoder = byte_level;
  decoder["add_prefix_space"] =
      true;  // as in ptq-small-32m's file; the ByteLevel decoder ignores it
  Json post = {{"type", "TemplateProcessing"},
               {"single",
                {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
               {"pair",
                {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                 {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
               {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}}};
  Json vocab = Json::object();
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) vocab[vocabulary.tokens[id]] = id;
  Json merges = Json::array();
  for (auto& [left, right] : vocabulary.merges) merges.push_back(left + " " + right);
  Json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}};
  return {{"version", "1.0"},       {"truncation", nullptr}, {"padding", nullptr},
          {"added_tokens", added},  {"normalizer", nullptr}, {"pre_tokenizer", byte_level},
          {"post_processor", post}, {"decoder", decoder},    {"model", model}};
}

}  // namespace ptq::demo
