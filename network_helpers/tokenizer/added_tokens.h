// Added tokens (tokenizer.json "added_tokens": "<|eot_id|>", "<s>", ...) and how they are found
// inside text. Like Hugging Face, encoding first cuts the text at added tokens (leftmost, then
// longest match), so "<|eot_id|>" written in a prompt is one token and never reaches the normalizer
// or the BPE model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ptq::tok {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;      // skipped by decode(skip_special_tokens=true)
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when not inside a word
  bool normalized = false;   // matched in normalized text (after the normalizer), not in raw text
};

// A stretch [begin, end) of the text: either ordinary text (token == nullptr) or one added token.
struct TextSegment {
  size_t begin = 0, end = 0;
  const AddedToken* token = nullptr;
};

// Finds a fixed set of added tokens in text.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `tokens` must outlive the matcher.
  explicit AddedTokenMatcher(const std::vector<const AddedToken*>& tokens);

  bool empty() const { return nodes_.size() <= 1; }

  // Cuts `text` (valid UTF-8) into ordinary stretches and added tokens, covering all of it; empty
  // ordinary stretches (e.g. the whitespace an lstrip/rstrip token swallowed) are left out.
  std::vector<TextSegment> split(std::string_view text) const;

 private:
  // A byte trie of the token contents; node 0 is the root.
  struct Node {
    std::unordered_map<unsigned char, int32_t> next;
    const AddedToken* token = nullptr;  // a token ends here
  };
  std::vector<Node> nodes_{1};
  bool first_byte_[256] = {};  // bytes that can start a token: a fast reject for ordinary text

  // The longest token starting at `pos`, and its end.
  const AddedToken* longest_match(std::string_view text, size_t pos, size_t* end) const;
};

}  // namespace ptq::tok
