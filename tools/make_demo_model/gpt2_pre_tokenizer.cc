#include "tools/make_demo_model/gpt2_pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "framework/error.h"

namespace ptq::demo {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Gpt2PreTokenizer::Gpt2PreTokenizer() {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // UCP makes \s Unicode-aware, as in the Rust/Python engines the pattern was written for.
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2SplitPattern), PCRE2_ZERO_TERMINATED,
                    PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  PTQ_CHECK(code != nullptr, "GPT-2 pre-tokenizer: cannot compile its regex: {} at offset {}",
            pcre2_message(error), offset);
  pcre2_jit_compile(
      code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is used when it fails
  code_ =
      std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

std::vector<std::pair<size_t, size_t>> Gpt2PreTokenizer::split(std::string_view text) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  std::vector<std::pair<size_t, size_t>> pieces;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  // PCRE2 validates the whole subject on every call unless told not to: once is enough (else the
  // split of a multi-megabyte text would be quadratic).
  uint32_t options = 0;
  while (start < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, options, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      fail("GPT-2 pre-tokenizer: {} (byte offset {} of a {}-byte text)", pcre2_message(rc),
           pcre2_get_startchar(match.get()), text.size());
    }
    options = PCRE2_NO_UTF_CHECK;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    size_t begin = ovector[0], end = ovector[1];
    // The alternatives cannot match the empty string and cover every character, so pieces tile the
    // text.
    PTQ_CHECK(begin == start && end > begin,
              "GPT-2 pre-tokenizer: unexpected match [{}, {}) at offset {}", begin, end, start);
    pieces.emplace_back(begin, end);
    start = end;
  }
  PTQ_CHECK(start == text.size(), "GPT-2 pre-tokenizer: no piece matches at byte offset {}", start);
  return pieces;
}

namespace {

struct ByteTable {
  std::array<char32_t, 256> code_point{};
  std::array<std::string, 256> symbol;
  ByteTable() {
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      code_point[b] = printable(b) ? char32_t(b) : next++;
      char32_t cp = code_point[b];  // < U+0800: one or two UTF-8 bytes
      if (cp < 0x80) {
        symbol[b] = std::string(1, char(cp));
      } else {
        symbol[b] = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
      }
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

}  // namespace

char32_t byte_to_code_point(uint8_t byte) { return byte_table().code_point[byte]; }

const std::string& byte_symbol(uint8_t byte) { return byte_table().symbol[byte]; }

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_symbol(static_cast<uint8_t>(c));
  return out;
}

}  // namespace ptq::demo
