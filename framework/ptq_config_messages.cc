// The wording of config errors, shared by every format: each message names the input, the key, the
// value received and what is allowed, and suggests the closest known spelling of a mistyped word.
#include <algorithm>
#include <cctype>

#include "framework/error.h"
#include "framework/ptq_config_fields.h"

namespace ptq::config_detail {
namespace {

// Levenshtein distance, ignoring case (a "Mode" for "mode" is a typo like any other).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      const size_t substitute = diagonal + (same ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// A word from the input as a message quotes it: a mistyped key is short, but a hostile file's "key" may
// be half a megabyte, which a message should not repeat.
std::string short_word(const std::string& word) {
  constexpr size_t kMaxChars = 80;
  if (word.size() <= kMaxChars) return word;
  return fmt::format("{}... ({} bytes)", word.substr(0, kMaxChars - 3), word.size());
}

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates,
                       const std::string& parent) {
  const auto match = closest_match(word, candidates);
  return match ? fmt::format("; did you mean \"{}\"?", key_path(parent, *match)) : std::string();
}

}  // namespace

std::string key_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string quoted_list(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words) out += (out.empty() ? "\"" : ", \"") + word + "\"";
  return out;
}

std::string short_dump(const nlohmann::json& value) {
  constexpr size_t kMaxChars = 80;
  // replace: a string from an INI/XML/INFO file may hold invalid UTF-8, which dump() would throw
  // on.
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars - 3) + "...";
  return text;
}

std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates) {
  // Close enough to be a typo: two edits, or a third of the word for long keys. A tie between two
  // candidates ("int2": int3? int4? int8?) suggests nothing rather than a coin toss.
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  bool tie = false;
  for (const std::string& candidate : candidates) {
    // The length difference bounds the distance from below: a word far longer than every candidate (a
    // fuzzed 500 KB key took seconds of edit distances) is no typo of any of them.
    const size_t length_difference =
        word.size() > candidate.size() ? word.size() - candidate.size() : candidate.size() - word.size();
    if (length_difference > limit) continue;
    const size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
      tie = false;
    } else if (distance == best_distance) {
      tie = true;
    }
  }
  if (tie) return std::nullopt;
  return best;
}

void fail_type(const std::string& source, const std::string& path, const std::string& expected,
               const std::string& got) {
  fail("key \"{}\" in {}: expected {}, got {}", path, source, expected, got);
}

void fail_unknown_key(const std::string& source, const std::string& parent, const std::string& key,
                      const std::vector<std::string>& known) {
  const std::string hint = suggestion(key, known, parent);
  const std::string shown = key_path(parent, short_word(key));
  if (!hint.empty()) fail("unknown key \"{}\" in {}{}", shown, source, hint);
  std::vector<std::string> paths;
  for (const std::string& name : known) paths.push_back(key_path(parent, name));
  fail("unknown key \"{}\" in {}; known keys: {}", shown, source, quoted_list(paths));
}

void fail_value(const std::string& source, const std::string& path, const std::string& got,
                const std::vector<std::string>& allowed) {
  const auto match = closest_match(got, allowed);
  fail("key \"{}\" in {}: \"{}\" is not allowed; allowed values: {}{}", path, source, short_word(got),
       quoted_list(allowed), match ? fmt::format("; did you mean \"{}\"?", *match) : "");
}

void check_version(int64_t version, const std::string& source) {
  if (version < 1)
    fail_type(source, "version", "a config format version >= 1", std::to_string(version));
  PTQ_CHECK(
      version <= kPTQConfigVersion,
      "{} has config format version {}, but this ptq reads versions up to {}; use a newer ptq, "
      "or rewrite the file for version {} (docs/CONFIG.md lists its keys) and set "
      "\"version\": {}",
      source, version, kPTQConfigVersion, kPTQConfigVersion, kPTQConfigVersion);
}

}  // namespace ptq::config_detail
