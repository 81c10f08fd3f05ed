#include "network_helpers/tokenizer/added_tokens.h"

#include <utf8proc.h>

#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {
// The code point that ends text[0, pos), or 0 at the start.
char32_t code_point_before(std::string_view text, size_t pos) {
  if (pos == 0) return 0;
  size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  const size_t n = utf8_char_length(text, start);
  return n ? decode_code_point(text, start, n) : 0;
}

char32_t code_point_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  const size_t n = utf8_char_length(text, pos);
  return n ? decode_code_point(text, pos, n) : 0;
}

// Rust's char::is_alphanumeric, plus '_': what single_word tokens must not touch.
bool is_word_char(char32_t cp) {
  if (cp == '_') return true;
  if (cp == 0) return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

size_t char_length_before(std::string_view text, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return pos - start;
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens) {
  for (const AddedToken* token : tokens) {
    if (token->content.empty()) continue;
    int32_t node = 0;
    for (char c : token->content) {
      const auto byte = static_cast<unsigned char>(c);
      auto it = nodes_[node].next.find(byte);
      if (it == nodes_[node].next.end()) {
        nodes_.emplace_back();
        it = nodes_[node].next.emplace(byte, static_cast<int32_t>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    nodes_[node].token = token;
    first_byte_[static_cast<unsigned char>(token->content[0])] = true;
  }
}

const AddedToken* AddedTokenMatcher::longest_match(std::string_view text, size_t pos,
                                                   size_t* end) const {
  const AddedToken* best = nullptr;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto it = nodes_[node].next.find(static_cast<unsigned char>(text[i]));
    if (it == nodes_[node].next.end()) break;
    node = it->second;
    if (nodes_[node].token) {
      best = nodes_[node].token;
      *end = i + 1;
    }
  }
  return best;
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> segments;
  size_t plain_begin = 0;  // start of the ordinary text not yet emitted
  const auto emit = [&](size_t begin, size_t end, const AddedToken* token) {
    if (begin < end || token) segments.push_back({begin, end, token});
  };
  for (size_t pos = 0; pos < text.size();) {
    size_t end = 0;
    const AddedToken* token = first_byte_[static_cast<unsigned char>(text[pos])]
                                  ? longest_match(text, pos, &end)
                                  : nullptr;
    if (!token) {
      ++pos;
      continue;
    }
    if (token->single_word &&
        (is_word_char(code_point_before(text, pos)) || is_word_char(code_point_at(text, end)))) {
      pos = end;  // Hugging Face skips such a match whole and keeps looking after it
      continue;
    }
    size_t begin = pos;
    if (token->lstrip) {
      while (begin > plain_begin && is_unicode_whitespace(code_point_before(text, begin))) {
        begin -= char_length_before(text, begin);
      }
    }
    if (token->rstrip) {
      while (end < text.size() && is_unicode_whitespace(code_point_at(text, end))) {
        end += utf8_char_length(text, end);
      }
    }
    emit(plain_begin, begin, nullptr);
    emit(begin, end, token);
    plain_begin = pos = end;
  }
  emit(plain_begin, text.size(), nullptr);
  return segments;
}

}  // namespace ptq::tok
