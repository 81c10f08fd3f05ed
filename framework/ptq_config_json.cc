// PTQConfig <-> JSON, and the entry points that read configs from text and files. Every format ends
// here: INI, XML and INFO are first converted to JSON (ptq_config_property_tree.cc), so the type
// checks and messages below are the only ones.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <system_error>

#include "framework/error.h"
#include "framework/json_limits.h"
#include "framework/ptq_config.h"
#include "framework/ptq_config_fields.h"

namespace ptq {

using nlohmann::json;
using namespace config_detail;

namespace {

// The keys a struct has, in the order of visit_fields.
struct KeyCollector {
  std::vector<std::string> keys;
  template <class T>
  void operator()(const char* key, const T&) {
    keys.push_back(key);
  }
  template <class T, class E>
  void operator()(const char* key, const T&, const std::vector<E>&) {
    keys.push_back(key);
  }
};

template <class S>
std::vector<std::string> keys_of() {
  const S prototype{};
  KeyCollector collector;
  visit_fields(prototype, collector);
  return collector.keys;
}

// Reads one JSON object into a struct: rejects unknown keys first (a typo is the likelier mistake),
// then type-checks and reads each key present; absent keys keep the struct's defaults.
class JsonReader {
 public:
  JsonReader(const json& object, std::string parent, const std::string& source)
      : object_(object), parent_(std::move(parent)), source_(source) {}

  template <class S>
  void read_struct(S& out) {
    const std::vector<std::string> known = keys_of<S>();
    for (const auto& item : object_.items())
      if (std::find(known.begin(), known.end(), item.key()) == known.end())
        fail_unknown_key(source_, parent_, item.key(), known);
    visit_fields(out, *this);
  }

  template <class T>
  void operator()(const char* key, T& member) {
    const auto it = object_.find(key);
    if (it != object_.end()) read(*it, key_path(parent_, key), member);
  }

  template <class T, class E>
  void operator()(const char* key, T& member, const std::vector<E>& allowed) {
    const auto it = object_.find(key);
    if (it == object_.end()) return;
    const std::string path = key_path(parent_, key);
    if (!it->is_string()) fail_type(source_, path, "a string", short_dump(*it));
    const std::string name = it->template get<std::string>();
    const std::optional<E> value = enum_parse(name, allowed);
    if (!value) fail_value(source_, path, name, enum_names(allowed));
    member = *value;
  }

 private:
  void read(const json& value, const std::string& path, bool& out) const {
    if (!value.is_boolean()) fail_type(source_, path, "true or false", short_dump(value));
    out = value.get<bool>();
  }

  template <class T, std::enable_if_t<std::is_integral_v<T>>* = nullptr>
  void read(const json& value, const std::string& path, T& out) const {
    if (!value.is_number_integer()) fail_type(source_, path, "an integer", short_dump(value));
    const bool fits =
        value.is_number_unsigned()
            ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
            : value.get<int64_t>() >= std::numeric_limits<T>::min() &&
                  value.get<int64_t>() <= std::numeric_limits<T>::max();
    if (!fits) fail_type(source_, path, "an integer in range", short_dump(value));
    out = static_cast<T>(value.is_number_unsigned() ? static_cast<int64_t>(value.get<uint64_t>())
                                                    : value.get<int64_t>());
  }

  void read(const json& value, const std::string& path, double& out) const {
    if (!value.is_number()) fail_type(source_, path, "a number", short_dump(value));
    out = value.get<double>();
  }

  void read(const json& value, const std::string& path, std::string& out) const {
    if (!value.is_string()) fail_type(source_, path, "a string", short_dump(value));
    out = value.get<std::string>();
  }

  void read(const json& value, const std::string& path, std::vector<std::string>& out) const {
    if (!value.is_array()) fail_type(source_, path, "a list of strings", short_dump(value));
    out.clear();
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_string())
        fail_type(source_, fmt::format("{}[{}]", path, i), "a string", short_dump(value[i]));
      out.push_back(value[i].get<std::string>());
    }
  }

  template <class T>
  void read(const json& value, const std::string& path, std::optional<T>& out) const {
    T inner{};
    read(value, path, inner);
    out = inner;
  }

  void read(const json& value, const std::string& path, CalibrationConfig& out) const {
    read_object(value, path, out);
  }

  void read(const json& value, const std::string& path, std::vector<LayerPolicy>& out) const {
    if (!value.is_array()) fail_type(source_, path, "a list of objects", short_dump(value));
    out.clear();
    for (size_t i = 0; i < value.size(); ++i) {
      LayerPolicy policy;
      read_object(value[i], fmt::format("{}[{}]", path, i), policy);
      out.push_back(std::move(policy));
    }
  }

  // algo_args: an object of objects. Which keys a known algorithm takes is checked by validate(),
  // which also sees configs built in code.
  void read(const json& value, const std::string& path, json& out) const {
    if (!value.is_object()) fail_type(source_, path, "an object", short_dump(value));
    for (const auto& [name, args] : value.items())
      if (!args.is_object())
        fail_type(source_, key_path(path, name), "an object of parameters", short_dump(args));
    out = value;
  }

  template <class S>
  void read_object(const json& value, const std::string& path, S& out) const {
    if (!value.is_object()) fail_type(source_, path, "an object", short_dump(value));
    JsonReader(value, path, source_).read_struct(out);
  }

  const json& object_;
  const std::string parent_;
  const std::string& source_;
};

// Writes every field of a struct; unset optional fields (in layer policies) are left out.
class JsonWriter {
 public:
  explicit JsonWriter(json& out) : out_(out) {}

  template <class T>
  void operator()(const char* key, const T& member) {
    if constexpr (IsOptional<T>::value) {
      if (member) out_[key] = value_of(*member);
    } else {
      out_[key] = value_of(member);
    }
  }
  template <class T, class E>
  void operator()(const char* key, const T& member, const std::vector<E>&) {
    (*this)(key, member);
  }

  template <class S>
  static json object_of(const S& value) {
    json out = json::object();
    JsonWriter writer(out);
    visit_fields(value, writer);
    return out;
  }

 private:
  template <class T>
  static json value_of(const T& value) {
    if constexpr (std::is_enum_v<T>) {
      return to_string(value);
    } else if constexpr (std::is_same_v<T, json>) {
      return merge_algo_args(value);  // canonical: every known parameter, defaults included
    } else if constexpr (std::is_same_v<T, CalibrationConfig>) {
      return object_of(value);
    } else if constexpr (std::is_same_v<T, std::vector<LayerPolicy>>) {
      json list = json::array();
      for (const LayerPolicy& policy : value) list.push_back(object_of(policy));
      return list;
    } else {
      return json(value);
    }
  }

  json& out_;
};

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

PTQConfig PTQConfig::from_json(const json& config, const std::string& source) {
  if (!config.is_object())
    fail("{}: a config is an object of keys (docs/CONFIG.md lists them), got {}", source,
         short_dump(config));
  const auto version_it = config.find("version");
  if (version_it != config.end() && version_it->is_number_integer())
    check_version(version_it->get<int64_t>(), source);
  PTQConfig result;
  JsonReader(config, "", source).read_struct(result);
  result.validate(source);
  return result;
}

json PTQConfig::to_json() const { return JsonWriter::object_of(*this); }

PTQConfig PTQConfig::from_string(const std::string& text, const std::string& format,
                                 const std::string& source) {
  if (format == "json")
    return from_json(parse_json_bounded(text, fmt::format("cannot parse {} as JSON", source)),
                     source);
  if (format == "ini" || format == "xml" || format == "info")
    return from_json(property_tree_to_json(text, format, source), source);
  fail("{}: unknown config format \"{}\"; allowed formats: \"json\", \"ini\", \"xml\", \"info\"",
       source, format);
}

PTQConfig PTQConfig::from_file(const std::filesystem::path& path) {
  const std::string source = path.string();
  const std::string extension = lowercase(path.extension().string());
  const std::vector<std::string> formats = {"json", "ini", "xml", "info"};
  const std::string format = extension.empty() ? "" : extension.substr(1);
  PTQ_CHECK(std::find(formats.begin(), formats.end(), format) != formats.end(),
            "config {}: unknown extension \"{}\"; allowed extensions: .json, .ini, .xml, .info",
            source, extension);
  std::ifstream in(path, std::ios::binary);
  PTQ_CHECK(in.good(), "cannot read config {}: {}", source,
            std::filesystem::exists(path) ? "permission denied or not a file" : "no such file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return from_string(text, format, source);
}

void PTQConfig::save(const std::filesystem::path& path) const {
  // Write next to the target and rename: a reader never sees half a file, and a failed write leaves
  // the previous config in place.
  std::filesystem::path temp = path;
  temp += fmt::format(".tmp{}", ::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    PTQ_CHECK(out.good(), "cannot write config {}: cannot create {}", path.string(), temp.string());
    out << to_json().dump(2) << "\n";
    out.close();
    if (!out.good()) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      fail("cannot write config {}: writing {} failed", path.string(), temp.string());
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    fail("cannot write config {}: rename from {} failed: {}", path.string(), temp.string(),
         error.message());
  }
}

}  // namespace ptq
