// Reading tokenizer files with errors that say where: every accessor takes a JsonPath ("which file,
// which key") so a malformed tokenizer.json fails with e.g.
//   "/m/tokenizer.json: key 'model.merges[3]': expected a merge "a b" or ["a", "b"], got 42".
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ptq::tok {

using Json = nlohmann::json;

// A position inside a JSON file: the file and the dotted key path leading to a value.
class JsonPath {
 public:
  explicit JsonPath(std::filesystem::path file, std::string key = "")
      : file_(std::move(file)), key_(std::move(key)) {}

  JsonPath operator/(std::string_view child) const;  // "model" / "type" -> "model.type"
  JsonPath operator[](size_t index) const;           // "merges" [3]   -> "merges[3]"

  const std::filesystem::path& file() const { return file_; }
  const std::string& key() const { return key_; }

  // Throws ptq::Error "<file>: key '<key>': expected <expected>, got <value>" ("<file>: expected
  // .." at the top level).
  [[noreturn]] void fail_expected(std::string_view expected, const Json& got) const;
  // Throws ptq::Error "<file>: key '<key>': <message>".
  [[noreturn]] void fail(std::string_view message) const;

 private:
  std::filesystem::path file_;
  std::string key_;
};

// Parses a whole JSON file; a missing or unparsable file throws ptq::Error naming it.
Json read_json_file(const std::filesystem::path& file);

// obj[key] where obj must be an object holding key; `what` describes the expected value for the
// error.
const Json& require_key(const Json& obj, std::string_view key, const JsonPath& where,
                        std::string_view what);
// obj[key] or nullptr when obj lacks key or it is null.
const Json* find_key(const Json& obj, std::string_view key);

std::string require_string(const Json& obj, std::string_view key, const JsonPath& where);
bool bool_or(const Json& obj, std::string_view key, bool fallback, const JsonPath& where);
std::string string_or(const Json& obj, std::string_view key, std::string fallback,
                      const JsonPath& where);
int64_t require_int(const Json& obj, std::string_view key, const JsonPath& where);

}  // namespace ptq::tok
