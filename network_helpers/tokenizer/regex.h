// A compiled Unicode regular expression (PCRE2 in UTF + UCP mode, JIT-compiled when possible). The
// pre-tokenizer patterns of tokenizer.json files are written for Rust's `regex`/`fancy-regex` or
// Python's `regex`: \p{L}, \p{N}, (?i:'s|'t), look-ahead `\s+(?!\S)`; PCRE2 reads all of them as
// they are, and UCP makes \s, \d, \w and case folding Unicode-aware as in those engines.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "network_helpers/tokenizer/json_util.h"

namespace ptq::tok {

class Regex {
 public:
  // Throws ptq::Error "invalid regular expression '<pattern>': <reason> at offset <n>".
  explicit Regex(const std::string& pattern);

  // Byte spans [begin, end) of the successive non-overlapping, non-empty matches in `text`, which
  // must be valid UTF-8. Thread-safe.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::shared_ptr<void> code_;  // pcre2_code_8, freed with pcre2_code_free_8
  bool jit_ = false;
};

// The pattern of a Split pre-tokenizer or a Replace normalizer/decoder: {"String": ".."} (a
// literal) or
// {"Regex": ".."}.
class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(const std::string& pattern);

  // Same contract as Regex::find_all.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // `text` with every match replaced by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // null for a literal
};

// Reads {"String": ".."} or {"Regex": ".."} at `where`; an invalid regex is reported with `where`.
Pattern pattern_from_json(const Json& value, const JsonPath& where);

}  // namespace ptq::tok
