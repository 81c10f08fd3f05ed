#include "network_helpers/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "framework/error.h"
#include "network_helpers/tokenizer/byte_level.h"
#include "network_helpers/tokenizer/regex.h"

namespace ptq::tok {

void PreTokenizer::pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const {
  std::vector<std::string> out;
  out.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    split(std::move(pieces[i]), at_text_start && i == 0, out);
  }
  pieces = std::move(out);
}

namespace {

// GPT-2's pattern (OpenAI encoder.py; Hugging Face ByteLevel with use_regex).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Hugging Face's SplitDelimiterBehavior: what happens to the matched stretches ("delimiters").
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `text` at the matches of `pattern` like Hugging Face's NormalizedString::split: the text
// is cut into alternating (gap, match) stretches, which `behavior` then keeps apart, drops or glues
// together. Empty pieces are dropped.
void split_by_pattern(const Pattern& pattern, Behavior behavior, bool invert,
                      const std::string& text, std::vector<std::string>& out) {
  struct Stretch {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Stretch> stretches;
  size_t last = 0;
  for (const auto& [begin, end] : pattern.find_all(text)) {
    if (begin > last) stretches.push_back({last, begin, invert});
    stretches.push_back({begin, end, !invert});
    last = end;
  }
  if (last < text.size()) stretches.push_back({last, text.size(), invert});

  std::vector<Stretch> pieces;  // is_match here means "remove"
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      pieces = stretches;
      break;
    case Behavior::kIsolated:
      for (const auto& s : stretches) pieces.push_back({s.begin, s.end, false});
      break;
    case Behavior::kContiguous:
      for (const auto& s : stretches) {
        if (!pieces.empty() && s.is_match == previous_match) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& s : stretches) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = stretches.rbegin(); it != stretches.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().begin = it->begin;
        } else {
          pieces.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const auto& p : pieces) {
    if (!p.is_match && p.end > p.begin) out.push_back(text.substr(p.begin, p.end - p.begin));
  }
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

 protected:
  void split(std::string piece, bool, std::vector<std::string>& out) const override {
    split_by_pattern(pattern_, behavior_, invert_, piece, out);
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// Optionally splits with GPT-2's regex, then maps every byte to its byte-level character.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_shared<const Regex>(kGpt2Pattern) : nullptr) {}

  bool is_byte_level() const override { return true; }

 protected:
  void split(std::string piece, bool, std::vector<std::string>& out) const override {
    if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) piece.insert(0, " ");
    if (!regex_) {
      if (!piece.empty()) out.push_back(bytes_to_byte_level(piece));
      return;
    }
    const std::string_view text = piece;
    size_t last = 0;  // stretches between matches are kept too (Isolated behaviour)
    for (const auto& [begin, end] : regex_->find_all(piece)) {
      if (begin > last) out.push_back(bytes_to_byte_level(text.substr(last, begin - last)));
      out.push_back(bytes_to_byte_level(text.substr(begin, end - begin)));
      last = end;
    }
    if (last < text.size()) out.push_back(bytes_to_byte_level(text.substr(last)));
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> regex_;
};

// SentencePiece emulation: spaces become `replacement` ("▁"), which is also prepended; with `split`
// every "▁" starts a new piece.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)),
        prepend_(prepend),
        split_(split),
        delimiter_(Pattern::literal(replacement_)) {}

 protected:
  void split(std::string piece, bool at_text_start, std::vector<std::string>& out) const override {
    piece = Pattern::literal(" ").replace_all(piece, replacement_);
    const bool starts_with_replacement = piece.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts_with_replacement &&
        (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && at_text_start))) {
      piece.insert(0, replacement_);
    }
    if (split_) {
      split_by_pattern(delimiter_, Behavior::kMergedWithNext, false, piece, out);
    } else if (!piece.empty()) {
      out.push_back(std::move(piece));
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
  Pattern delimiter_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}

  bool is_byte_level() const override {
    for (const auto& step : steps_) {
      if (step->is_byte_level()) return true;
    }
    return false;
  }

 protected:
  void split(std::string piece, bool at_text_start, std::vector<std::string>& out) const override {
    std::vector<std::string> pieces{std::move(piece)};
    for (const auto& step : steps_) step->pre_tokenize(pieces, at_text_start);
    for (auto& p : pieces) out.push_back(std::move(p));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

Behavior parse_behavior(const Json& config, const JsonPath& where) {
  const std::string name = require_string(config, "behavior", where);
  // Hugging Face writes "Isolated"; older files and the Python API use snake case.
  if (name == "Removed" || name == "removed") return Behavior::kRemoved;
  if (name == "Isolated" || name == "isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious" || name == "merged_with_previous") {
    return Behavior::kMergedWithPrevious;
  }
  if (name == "MergedWithNext" || name == "merged_with_next") return Behavior::kMergedWithNext;
  if (name == "Contiguous" || name == "contiguous") return Behavior::kContiguous;
  (where / "behavior")
      .fail_expected("Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous",
                     config["behavior"]);
}

std::unique_ptr<PreTokenizer> make_metaspace(const Json& config, const JsonPath& where) {
  const std::string replacement = string_or(config, "replacement", "\xE2\x96\x81", where);  // ▁
  // tokenizers >= 0.19 writes prepend_scheme; older files only add_prefix_space.
  auto prepend = bool_or(config, "add_prefix_space", true, where)
                     ? MetaspacePreTokenizer::Prepend::kAlways
                     : MetaspacePreTokenizer::Prepend::kNever;
  if (const Json* scheme = find_key(config, "prepend_scheme")) {
    const std::string name = scheme->is_string() ? scheme->get<std::string>() : "";
    if (name == "always") {
      prepend = MetaspacePreTokenizer::Prepend::kAlways;
    } else if (name == "first") {
      prepend = MetaspacePreTokenizer::Prepend::kFirst;
    } else if (name == "never") {
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    } else {
      (where / "prepend_scheme").fail_expected("\"always\", \"first\" or \"never\"", *scheme);
    }
  }
  return std::make_unique<MetaspacePreTokenizer>(replacement, prepend,
                                                 bool_or(config, "split", true, where));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& config, const JsonPath& where) {
  if (config.is_null()) return nullptr;
  const std::string type = require_string(config, "type", where);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(
        bool_or(config, "add_prefix_space", false, where),
        bool_or(config, "use_regex", true, where));
  }
  if (type == "Split") {
    const Json& pattern =
        require_key(config, "pattern", where, R"({"String": ..} or {"Regex": ..})");
    return std::make_unique<SplitPreTokenizer>(pattern_from_json(pattern, where / "pattern"),
                                               parse_behavior(config, where),
                                               bool_or(config, "invert", false, where));
  }
  if (type == "Metaspace") return make_metaspace(config, where);
  if (type == "Digits") {
    // Rust's char::is_numeric is the Unicode N categories.
    const bool individual = bool_or(config, "individual_digits", false, where);
    return std::make_unique<SplitPreTokenizer>(
        Pattern::regex(R"(\p{N})"), individual ? Behavior::kIsolated : Behavior::kContiguous,
        false);
  }
  if (type == "Whitespace") {
    return std::make_unique<SplitPreTokenizer>(Pattern::regex(R"(\w+|[^\w\s]+)"),
                                               Behavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>(Pattern::regex(R"(\s+)"), Behavior::kRemoved, false);
  }
  if (type == "Sequence") {
    const Json& list = require_key(config, "pretokenizers", where, "a list of pre-tokenizers");
    if (!list.is_array()) (where / "pretokenizers").fail_expected("a list of pre-tokenizers", list);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto step = make_pre_tokenizer(list[i], (where / "pretokenizers")[i])) {
        steps.push_back(std::move(step));
      }
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  (where / "type")
      .fail(fmt::format("unsupported pre_tokenizer type '{}' (ptq supports ByteLevel, Split, "
                        "Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence)",
                        type));
}

std::unique_ptr<PreTokenizer> make_gpt2_byte_level_pre_tokenizer() {
  return std::make_unique<ByteLevelPreTokenizer>(false, true);
}

}  // namespace ptq::tok
