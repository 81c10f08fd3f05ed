// Parsing JSON from files we do not control (configs, safetensors headers and indexes, config.json,
// tokenizer.json) with a bound on nesting depth. nlohmann's parser itself is iterative, but dump(),
// copies and everything that walks a value (our readers, tokenizer stage builders) recurse once per
// level: a 100 000-deep "[[[[..." of a few hundred kilobytes would overflow the stack. No real file
// of ours nests deeper than about 8, so anything beyond kMaxJsonDepth is refused with a message
// before such a value exists. Header-only so that the tokenizer library (built without LibTorch and
// without ptq_framework) can use it too. docs/ROBUSTNESS.md lists every limit.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "framework/error.h"

namespace ptq {

// Deepest nesting of objects and arrays accepted in any JSON input.
inline constexpr int kMaxJsonDepth = 128;

namespace detail {
// Thrown from inside the parser callback to stop the parse early; turned into ptq::Error.
struct JsonTooDeep {};
}  // namespace detail

// Parses `text` as JSON; `source` starts the messages ("model/config.json"). Throws ptq::Error for
// invalid JSON (nlohmann's message, with the byte offset) and for nesting deeper than
// kMaxJsonDepth.
inline nlohmann::json parse_json_bounded(std::string_view text, const std::string& source) {
  using json = nlohmann::json;
  // The callback sees every event with the depth of the container being opened.
  const json::parser_callback_t limit = [](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw detail::JsonTooDeep{};
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const detail::JsonTooDeep&) {
    fail(
        "{}: JSON nested deeper than {} levels (corrupt or hostile input; no valid file of ours "
        "nests "
        "that deep)",
        source, kMaxJsonDepth);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", source, e.what());
  }
}

// Byte offset of the first invalid UTF-8 sequence in `text` (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or npos when it is all valid.
inline size_t first_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + n > text.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (next & 0x3F);
    }
    const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < smallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string_view::npos;
}

}  // namespace ptq
