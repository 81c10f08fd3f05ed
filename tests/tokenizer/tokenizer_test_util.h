// Helpers of the tokenizer tests: the committed fixtures (tests/data/tokenizer) and writing small
// tokenizer files into temporary folders.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace ptq::testing {

// tests/data/tokenizer of the source tree (found from this header's own path).
inline std::filesystem::path tokenizer_fixture_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "tokenizer";
}

inline nlohmann::json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  return nlohmann::json::parse(in);
}

inline std::filesystem::path write_file(const std::filesystem::path& file,
                                        const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  return file;
}

}  // namespace ptq::testing
