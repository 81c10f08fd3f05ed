#include "network_helpers/tokenizer/byte_level.h"

#include <array>

#include "network_helpers/tokenizer/utf8.h"

namespace ptq::tok {

namespace {
struct ByteLevelTables {
  std::array<char32_t, 256> to_cp{};
  std::array<std::string, 256> to_utf8;
  ByteLevelTables() {
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_cp[b] = printable(b) ? static_cast<char32_t>(b) : next++;
      append_code_point(to_utf8[b], to_cp[b]);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables instance;
  return instance;
}
}  // namespace

char32_t byte_to_code_point(uint8_t byte) { return tables().to_cp[byte]; }

std::optional<uint8_t> code_point_to_byte(char32_t cp) {
  // The mapping's image is [0x21, 0x143]: identity for printable bytes, 0x100 + k for the k-th
  // other.
  static const std::array<int16_t, 0x144> inverse = [] {
    std::array<int16_t, 0x144> table;
    table.fill(-1);
    for (int b = 0; b < 256; ++b) table[tables().to_cp[b]] = static_cast<int16_t>(b);
    return table;
  }();
  if (cp >= inverse.size() || inverse[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[cp]);
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.to_utf8[static_cast<uint8_t>(c)];
  return out;
}

std::string byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = utf8_char_length(text, pos);
    const auto byte = n ? code_point_to_byte(decode_code_point(text, pos, n)) : std::nullopt;
    if (!byte) return std::string(text);
    out.push_back(static_cast<char>(*byte));
    pos += n;
  }
  return out;
}

std::optional<uint8_t> parse_byte_token(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

}  // namespace ptq::tok
