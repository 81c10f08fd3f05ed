#include "network_helpers/tokenizer/normalizer.h"

#include <vector>

#include "framework/error.h"
#include "network_helpers/tokenizer/regex.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string text) const override { return unicode_normalize(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode_lowercase(text); }
};

// Strips Unicode whitespace from the left and/or right end.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        const size_t n = utf8_char_length(text, begin);
        if (!n || !is_unicode_whitespace(decode_code_point(text, begin, n))) break;
        begin += n;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;  // back up to the lead byte of the last code point
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        const size_t n = utf8_char_length(text, start);
        if (!n || !is_unicode_whitespace(decode_code_point(text, start, n))) break;
        end = start;
      }
    }
    return text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

// Mistral/Llama-style SentencePiece emulation prepends "▁"; Hugging Face leaves empty text empty.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override {
    return text.empty() ? text : prefix_ + text;
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string text) const override {
    return pattern_.replace_all(text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& config, const JsonPath& where) {
  if (config.is_null()) return nullptr;
  const std::string type = require_string(config, "type", where);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(bool_or(config, "strip_left", true, where),
                                             bool_or(config, "strip_right", true, where));
  }
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(require_string(config, "prepend", where));
  }
  if (type == "Replace") {
    const Json& pattern =
        require_key(config, "pattern", where, R"({"String": ..} or {"Regex": ..})");
    return std::make_unique<ReplaceNormalizer>(pattern_from_json(pattern, where / "pattern"),
                                               require_string(config, "content", where));
  }
  if (type == "Sequence") {
    const Json& list = require_key(config, "normalizers", where, "a list of normalizers");
    if (!list.is_array()) (where / "normalizers").fail_expected("a list of normalizers", list);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto step = make_normalizer(list[i], (where / "normalizers")[i])) {
        steps.push_back(std::move(step));
      }
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  (where / "type")
      .fail(fmt::format("unsupported normalizer type '{}' (ptq supports NFC, NFD, NFKC, NFKD, "
                        "Lowercase, Strip, Prepend, Replace, Sequence)",
                        type));
}

}  // namespace ptq::tok
