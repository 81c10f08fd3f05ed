#include "network_helpers/tokenizer/json_util.h"

#include <fstream>
#include <sstream>

#include "framework/error.h"
#include "framework/json_limits.h"

namespace ptq::tok {

JsonPath JsonPath::operator/(std::string_view child) const {
  return JsonPath(file_, key_.empty() ? std::string(child) : key_ + "." + std::string(child));
}

JsonPath JsonPath::operator[](size_t index) const {
  return JsonPath(file_, key_ + "[" + std::to_string(index) + "]");
}

namespace {
// Long values (a whole vocabulary) are cut so the message stays readable.
std::string short_dump(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}
}  // namespace

void JsonPath::fail_expected(std::string_view expected, const Json& got) const {
  fail(fmt::format("expected {}, got {}", expected, short_dump(got)));
}

void JsonPath::fail(std::string_view message) const {
  if (key_.empty()) ptq::fail("{}: {}", file_.string(), message);  // the file's top level
  ptq::fail("{}: key '{}': {}", file_.string(), key_, message);
}

Json read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the file", file.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  // Bounded nesting: the stage builders (Sequence of Sequence ..) and dump() recurse per level.
  return parse_json_bounded(buffer.str(), file.string());
}

const Json* find_key(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const Json& require_key(const Json& obj, std::string_view key, const JsonPath& where,
                        std::string_view what) {
  if (!obj.is_object()) where.fail_expected("an object", obj);
  auto it = obj.find(key);
  if (it == obj.end()) (where / key).fail(fmt::format("missing; expected {}", what));
  return *it;
}

std::string require_string(const Json& obj, std::string_view key, const JsonPath& where) {
  const Json& value = require_key(obj, key, where, "a string");
  if (!value.is_string()) (where / key).fail_expected("a string", value);
  return value.get<std::string>();
}

bool bool_or(const Json& obj, std::string_view key, bool fallback, const JsonPath& where) {
  const Json* value = find_key(obj, key);
  if (!value) return fallback;
  if (!value->is_boolean()) (where / key).fail_expected("true or false", *value);
  return value->get<bool>();
}

std::string string_or(const Json& obj, std::string_view key, std::string fallback,
                      const JsonPath& where) {
  const Json* value = find_key(obj, key);
  if (!value) return fallback;
  if (!value->is_string()) (where / key).fail_expected("a string", *value);
  return value->get<std::string>();
}

int64_t require_int(const Json& obj, std::string_view key, const JsonPath& where) {
  const Json& value = require_key(obj, key, where, "an integer");
  if (!value.is_number_integer()) (where / key).fail_expected("an integer", value);
  return value.get<int64_t>();
}

}  // namespace ptq::tok
