// GPT-2's byte-to-unicode mapping (OpenAI encoder.py `bytes_to_unicode`), used by every ByteLevel
// BPE (GPT-2, Llama-3, Qwen, ptq-small-32m): each byte becomes one printable code point, so that
// the BPE vocabulary never holds spaces or control characters. Printable Latin-1 bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes map to U+0100.. in byte order (space ->
// 'Ġ' U+0120).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ptq::tok {

// The code point that stands for `byte`.
char32_t byte_to_code_point(uint8_t byte);

// The byte a code point stands for, or nullopt for code points outside the mapping.
std::optional<uint8_t> code_point_to_byte(char32_t cp);

// Every byte of `bytes` replaced by its code point, as UTF-8.
std::string bytes_to_byte_level(std::string_view bytes);

// Inverse of bytes_to_byte_level. A text holding a character outside the mapping is returned
// unchanged (its UTF-8 bytes), as Hugging Face's ByteLevel decoder does with such a token.
std::string byte_level_to_bytes(std::string_view text);

// The byte of a SentencePiece byte-fallback token "<0xNN>" (two hex digits), or nullopt for other
// text.
std::optional<uint8_t> parse_byte_token(std::string_view token);

}  // namespace ptq::tok
