// UTF-8 helpers of the tokenizers: walking code points, repairing invalid input, Unicode
// normalization (utf8proc). Tokenizers work on valid UTF-8 only: encode() repairs its input first
// (invalid bytes become U+FFFD, as Python's errors="replace" and JavaScript's TextDecoder do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ptq::tok {

// Length in bytes of the well-formed code point starting at text[pos], or 0 when the bytes there
// are not well-formed UTF-8 (bad lead byte, truncated, overlong, surrogate, above U+10FFFF).
size_t utf8_char_length(std::string_view text, size_t pos);

bool is_valid_utf8(std::string_view text);

// Replaces every maximal ill-formed subpart by U+FFFD (the Unicode / WHATWG decoder rule).
std::string to_valid_utf8(std::string_view text);

// Decodes the code point of a well-formed sequence of `length` bytes at text[pos].
char32_t decode_code_point(std::string_view text, size_t pos, size_t length);

void append_code_point(std::string& out, char32_t cp);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

// Unicode normalization of valid UTF-8.
std::string unicode_normalize(std::string_view text, NormalForm form);

// Simple lower-casing of every code point (utf8proc_tolower), like Rust's str::to_lowercase for the
// characters whose lower case is a single code point.
std::string unicode_lowercase(std::string_view text);

// Unicode White_Space (what str::trim of Rust and JavaScript strip).
bool is_unicode_whitespace(char32_t cp);

}  // namespace ptq::tok
