#include "network_helpers/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "framework/error.h"
#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {
pcre2_code* as_code(const std::shared_ptr<void>& code) {
  return static_cast<pcre2_code*>(code.get());
}

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// JIT matching runs on a per-thread stack; the 32 KiB default can overflow on long whitespace runs
// matched by `\s+(?!\S)`, so each thread gets one that may grow to 8 MiB.
struct ThreadMatchContext {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadMatchContext() {
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (stack && context) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchContext() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

pcre2_match_context* thread_match_context() {
  thread_local ThreadMatchContext instance;
  return instance.context;
}
}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  PTQ_CHECK(code != nullptr, "invalid regular expression '{}': {} at offset {}", pattern,
            pcre2_message(error_code), error_offset);
  code_ =
      std::shared_ptr<void>(code, [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
  // Without JIT (unsupported CPU) the interpreter gives the same matches, only slower.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> spans;
  pcre2_code* code = as_code(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  pcre2_match_context* context = jit_ ? thread_match_context() : nullptr;
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The text was validated once by the caller; checking it on every call would be quadratic.
    const int rc =
        pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(), context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    PTQ_CHECK(rc >= 0, "regular expression '{}' failed: {}", pattern_, pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      spans.emplace_back(begin, end);
      start = end;
    } else {  // an empty match: step over one character
      if (begin >= text.size()) break;
      const size_t n = utf8_char_length(text, begin);
      start = begin + (n ? n : 1);
    }
  }
  return spans;
}

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::regex(const std::string& pattern) {
  Pattern p;
  p.regex_ = std::make_shared<const Regex>(pattern);
  return p;
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> spans;
  if (literal_.empty()) return spans;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos;
       pos = text.find(literal_, pos + literal_.size())) {
    spans.emplace_back(pos, pos + literal_.size());
  }
  return spans;
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t last = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(last, begin - last)).append(content);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

Pattern pattern_from_json(const Json& value, const JsonPath& where) {
  if (const Json* literal = find_key(value, "String"); literal && literal->is_string()) {
    return Pattern::literal(literal->get<std::string>());
  }
  if (const Json* regex = find_key(value, "Regex"); regex && regex->is_string()) {
    try {
      return Pattern::regex(regex->get<std::string>());
    } catch (const ptq::Error& e) {
      (where / "Regex").fail(e.what());
    }
  }
  where.fail_expected(R"({"String": ".."} or {"Regex": ".."})", value);
}

}  // namespace ptq::tok
