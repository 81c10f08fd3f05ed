// INI, XML and INFO configs through Boost.PropertyTree. A property tree holds only strings, so the
// tree is converted to JSON with each value typed by its key (visit_fields says which members are
// bools, integers, numbers, lists, ...), and from_json then checks it like any JSON config. The
// conventions (sections, <item>, comma-separated lists) are documented in docs/CONFIG.md.
#include <algorithm>
#include <boost/property_tree/info_parser.hpp>
#include <boost/property_tree/ini_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "framework/error.h"
#include "framework/json_limits.h"
#include "framework/ptq_config.h"
#include "framework/ptq_config_fields.h"

namespace ptq::config_detail {

using nlohmann::json;
namespace pt = boost::property_tree;

namespace {

// The element name of list entries in XML and INFO: <opname_blacklist><item>lm_head</item>...
constexpr const char* kListItem = "item";

// Deepest nesting accepted in INI section names, XML elements and INFO braces. Real configs nest 4
// levels; the tree converters, Boost's XML reader (rapidxml) and ptree's destructor all recurse
// once per level, so a hostile "<a><a><a>..." or "{{{{..." must be refused before it reaches them.
constexpr int kMaxTreeDepth = 64;

[[noreturn]] void fail_too_deep(const std::string& source, const std::string& format) {
  fail("{}: {} nesting deeper than {} levels (corrupt or hostile input; configs nest 4 levels)",
       source, format, kMaxTreeDepth);
}

// The deepest element nesting of an XML text, as rapidxml would build it, or more (never less):
// comments, CDATA, processing instructions and declarations are skipped, quoted attribute values
// are honoured, a self-closing element does not nest, and unmatched closing tags never lower the
// count below 0. Runs before the parser, which recurses per level.
int xml_depth_bound(const std::string& text) {
  int depth = 0, deepest = 0;
  const auto skip_past = [&](size_t from, const char* end) {
    const size_t found = text.find(end, from);
    return found == std::string::npos ? text.size() : found + std::strlen(end);
  };
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '<') {
      ++i;
      continue;
    }
    if (text.compare(i, 4, "<!--") == 0) {
      i = skip_past(i + 4, "-->");
    } else if (text.compare(i, 9, "<![CDATA[") == 0) {
      i = skip_past(i + 9, "]]>");
    } else if (text.compare(i, 2, "<?") == 0) {
      i = skip_past(i + 2, "?>");
    } else if (text.compare(i, 2, "<!") == 0) {
      // A declaration; a DOCTYPE's internal subset [..] may hold '>' (rapidxml skips it by
      // bracket depth, and so do we).
      size_t j = i + 2;
      int brackets = 0;
      for (; j < text.size() && (brackets > 0 || text[j] != '>'); ++j) {
        if (text[j] == '[') ++brackets;
        if (text[j] == ']' && brackets > 0) --brackets;
      }
      i = j + 1;
    } else if (text.compare(i, 2, "</") == 0) {
      depth = std::max(0, depth - 1);
      i = skip_past(i + 2, ">");
    } else {
      // An element: find its '>' outside quoted attribute values.
      size_t j = i + 1;
      char quote_char = 0;
      for (; j < text.size(); ++j) {
        const char c = text[j];
        if (quote_char) {
          if (c == quote_char) quote_char = 0;
        } else if (c == '"' || c == '\'') {
          quote_char = c;
        } else if (c == '>') {
          break;
        }
      }
      const bool self_closing = j < text.size() && j > i + 1 && text[j - 1] == '/';
      if (!self_closing) deepest = std::max(deepest, ++depth);
      i = j + 1;
    }
  }
  return deepest;
}

// The deepest brace nesting of an INFO text, tokenized as Boost's reader does (line by line; a NUL
// ends a line; tokens are '{', '}', "quoted strings" with backslash escapes, and words, which end
// at whitespace or ';' and may contain braces; ';' starts a comment). Boost keeps its own stack
// while parsing, but a too-deep tree would still overflow ptree's recursive destructor, even when
// the parse fails half-way.
int info_depth_bound(const std::string& text) {
  const auto is_space = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 128 && std::isspace(u);
  };
  int depth = 0, deepest = 0;
  size_t i = 0;
  const auto end_of_line = [&] {
    while (i < text.size() && text[i] != '\n') ++i;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n' || is_space(c)) {
      ++i;
    } else if (c == ';' || c == '\0') {
      end_of_line();
    } else if (c == '{') {
      deepest = std::max(deepest, ++depth);
      ++i;
    } else if (c == '}') {
      depth = std::max(0, depth - 1);
      ++i;
    } else if (c == '"') {
      bool escaped = false;
      for (++i; i < text.size() && text[i] != '\n' && text[i] != '\0'; ++i) {
        if (!escaped && text[i] == '"') break;
        escaped = !escaped && text[i] == '\\';
      }
      if (i < text.size() && text[i] == '"') ++i;
    } else {
      while (i < text.size() && !is_space(text[i]) && text[i] != ';' && text[i] != '\0') ++i;
    }
  }
  return deepest;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string quote(const std::string& text) { return json(text).dump(); }

std::optional<int64_t> parse_int(const std::string& text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_number(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  // "nan", "inf" and overflowing literals are not numbers a config can hold (JSON has no spelling
  // for them): an untyped value stays a string, a typed one is a type error.
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text == "true") return true;
  if (text == "false") return false;
  return std::nullopt;
}

// Children of `node` in order, refusing a key given twice (a JSON object cannot hold that).
std::vector<std::pair<std::string, const pt::ptree*>> unique_children(const pt::ptree& node,
                                                                      const std::string& parent,
                                                                      const std::string& source) {
  std::vector<std::pair<std::string, const pt::ptree*>> children;
  for (const auto& [key, child] : node) {
    for (const auto& seen : children)
      PTQ_CHECK(seen.first != key, "key \"{}\" appears twice in {}", key_path(parent, key), source);
    children.emplace_back(key, &child);
  }
  return children;
}

// Types a value by its look: for keys the schema does not know (plugin arguments, and unknown keys,
// which from_json then reports by name).
json infer(const pt::ptree& node, const std::string& path, const std::string& source) {
  if (node.empty()) {
    const std::string& text = node.data();
    if (const auto flag = parse_bool(text)) return *flag;
    if (const auto integer = parse_int(text)) return *integer;
    if (const auto number = parse_number(text)) return *number;
    return text;
  }
  const bool is_list = std::all_of(node.begin(), node.end(),
                                   [](const auto& child) { return child.first == kListItem; });
  if (is_list) {
    json list = json::array();
    for (const auto& child : node)
      list.push_back(infer(child.second, fmt::format("{}[{}]", path, list.size()), source));
    return list;
  }
  json object = json::object();
  for (const auto& [key, child] : unique_children(node, path, source))
    object[key] = infer(*child, key_path(path, key), source);
  return object;
}

// The entries of a list node: <item> children (XML, INFO), or numbered children (INI sections
// [layer_policies.0], [layer_policies.1], ... ordered by number).
std::vector<const pt::ptree*> list_entries(const pt::ptree& node, const std::string& path,
                                           const std::string& source, bool numbered_allowed) {
  std::vector<std::pair<int64_t, const pt::ptree*>> numbered;
  std::vector<const pt::ptree*> items;
  for (const auto& [key, child] : node) {
    if (key == kListItem) {
      items.push_back(&child);
      continue;
    }
    const auto index = parse_int(key);
    PTQ_CHECK(numbered_allowed && index && *index >= 0,
              "key \"{}\" in {}: list entries are written as <{}> elements (XML) or \"{}\" keys "
              "(INFO){}, got \"{}\"",
              path, source, kListItem, kListItem,
              numbered_allowed ? ", or as numbered sections [name.0], [name.1] (INI)" : "", key);
    numbered.emplace_back(*index, &child);
  }
  PTQ_CHECK(items.empty() || numbered.empty(),
            "key \"{}\" in {}: mixes <{}> entries with numbered entries; use one style", path,
            source, kListItem);
  std::sort(numbered.begin(), numbered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& entry : numbered) items.push_back(entry.second);
  return items;
}

// Converts one struct's node, member by member, as visit_fields lists them; children it does not
// know are passed on (typed by their look) for from_json to report.
class TreeConverter {
 public:
  template <class S>
  static json convert(const pt::ptree& node, const std::string& parent, const std::string& source) {
    const S prototype{};
    TreeConverter converter(node, parent, source);
    visit_fields(prototype, converter);
    for (const auto& [key, child] : converter.children_)
      if (std::find(converter.visited_.begin(), converter.visited_.end(), key) ==
          converter.visited_.end())
        converter.out_[key] = infer(*child, key_path(parent, key), source);
    return converter.out_;
  }

  template <class T>
  void operator()(const char* key, const T& prototype) {
    visited_.push_back(key);
    for (const auto& [name, child] : children_)
      if (name == key) out_[key] = value_of(*child, key_path(parent_, key), prototype);
  }
  template <class T, class E>
  void operator()(const char* key, const T& prototype, const std::vector<E>&) {
    (*this)(key, prototype);  // enum values stay strings; from_json checks them
  }

 private:
  TreeConverter(const pt::ptree& node, std::string parent, const std::string& source)
      : parent_(std::move(parent)), source_(source) {
    children_ = unique_children(node, parent_, source);
  }

  template <class T>
  json value_of(const pt::ptree& node, const std::string& path, const T& prototype) const {
    if constexpr (IsOptional<T>::value) {
      return value_of(node, path, typename T::value_type{});
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      return string_list(node, path);
    } else if constexpr (std::is_same_v<T, CalibrationConfig>) {
      return object_of<CalibrationConfig>(node, path);
    } else if constexpr (std::is_same_v<T, std::vector<LayerPolicy>>) {
      if (node.empty() && !trim(node.data()).empty()) return node.data();
      json list = json::array();
      for (const pt::ptree* entry : list_entries(node, path, source_, true))
        list.push_back(object_of<LayerPolicy>(*entry, fmt::format("{}[{}]", path, list.size())));
      return list;
    } else if constexpr (std::is_same_v<T, json>) {
      return algo_args(node, path);
    } else {
      // A scalar; a section where a value belongs goes on as an object for from_json to refuse.
      if (!node.empty()) return infer(node, path, source_);
      return scalar(node.data(), path, prototype);
    }
  }

  template <class T>
  json scalar(const std::string& text, const std::string& path, const T& prototype) const {
    if constexpr (std::is_same_v<T, bool>) {
      const auto flag = parse_bool(text);
      if (!flag) fail_type(source_, path, "true or false", quote(text));
      return *flag;
    } else if constexpr (std::is_integral_v<T>) {
      const auto integer = parse_int(text);
      if (!integer) fail_type(source_, path, "an integer", quote(text));
      return *integer;
    } else if constexpr (std::is_floating_point_v<T>) {
      const auto number = parse_number(text);
      if (!number) fail_type(source_, path, "a number", quote(text));
      return *number;
    } else {
      return text;  // strings and enum names
    }
  }

  // A list of strings: <item> children, or one comma-separated value ("lm_head, mlp.down"; an empty
  // value is the empty list).
  json string_list(const pt::ptree& node, const std::string& path) const {
    json list = json::array();
    if (!node.empty()) {
      for (const pt::ptree* entry : list_entries(node, path, source_, false))
        list.push_back(entry->empty()
                           ? json(entry->data())
                           : infer(*entry, fmt::format("{}[{}]", path, list.size()), source_));
      return list;
    }
    if (trim(node.data()).empty()) return list;
    std::stringstream parts(node.data());
    for (std::string part; std::getline(parts, part, ',');) list.push_back(trim(part));
    return list;
  }

  template <class S>
  json object_of(const pt::ptree& node, const std::string& path) const {
    if (node.empty() && !trim(node.data()).empty())
      return node.data();  // from_json: "expected an object"
    return convert<S>(node, path, source_);
  }

  // Built-in algorithms' parameters take the type of their default; plugin parameters are typed
  // by their look.
  json algo_args(const pt::ptree& node, const std::string& path) const {
    if (node.empty() && !trim(node.data()).empty()) return node.data();
    const json& defaults = PTQConfig::default_algo_args();
    json out = json::object();
    for (const auto& [name, args] : unique_children(node, path, source_)) {
      const std::string algorithm_path = key_path(path, name);
      if (!defaults.contains(name) || args->empty()) {
        out[name] = args->empty() && trim(args->data()).empty()
                        ? json::object()
                        : infer(*args, algorithm_path, source_);
        continue;
      }
      json& params = out[name] = json::object();
      for (const auto& [key, value] : unique_children(*args, algorithm_path, source_)) {
        const std::string param_path = key_path(algorithm_path, key);
        const auto fallback = defaults.at(name).find(key);
        if (fallback == defaults.at(name).end() || !value->empty()) {
          params[key] = infer(*value, param_path, source_);
        } else if (fallback->is_boolean()) {
          params[key] = scalar(value->data(), param_path, false);
        } else if (fallback->is_number_integer()) {
          params[key] = scalar(value->data(), param_path, int64_t{0});
        } else {
          params[key] = scalar(value->data(), param_path, 0.0);
        }
      }
    }
    return out;
  }

  std::string parent_;
  const std::string& source_;
  std::vector<std::pair<std::string, const pt::ptree*>> children_;
  std::vector<std::string> visited_;
  json out_ = json::object();
};

// XML carries values in elements only; an attribute would be silently lost, so it is refused.
void reject_xml_attributes(const pt::ptree& node, const std::string& path,
                           const std::string& source) {
  for (const auto& [key, child] : node) {
    PTQ_CHECK(key != "<xmlattr>",
              "{}: XML attributes are not read (on <{}>); write each key as a child element, "
              "e.g. <group_size>128</group_size>",
              source, path.empty() ? "ptq" : path);
    reject_xml_attributes(child, key, source);
  }
}

// INI has one level of sections; dotted names nest: [algo_args.awq] is algo_args -> awq, and
// [layer_policies.0] is the first entry of layer_policies.
pt::ptree nest_dotted_ini_names(const pt::ptree& flat, const std::string& source) {
  pt::ptree nested;
  for (const auto& [name, child] : flat) {
    if (std::count(name.begin(), name.end(), '.') >= kMaxTreeDepth) fail_too_deep(source, "ini");
    nested.add_child(pt::ptree::path_type(name, '.'), child);
  }
  return nested;
}

}  // namespace

json property_tree_to_json(const std::string& text, const std::string& format,
                           const std::string& source) {
  // Keys and values become JSON strings, and JSON holds UTF-8 only.
  const size_t invalid = first_invalid_utf8(text);
  PTQ_CHECK(invalid == std::string::npos, "{}: not valid UTF-8 at byte {} (configs are UTF-8 text)",
            source, invalid);
  pt::ptree tree;
  std::istringstream in(text);
  try {
    if (format == "ini") {
      pt::ptree flat;
      pt::read_ini(in, flat);
      tree = nest_dotted_ini_names(flat, source);
    } else if (format == "xml") {
      if (xml_depth_bound(text) > kMaxTreeDepth) fail_too_deep(source, "xml");
      pt::ptree document;
      pt::read_xml(in, document, pt::xml_parser::trim_whitespace | pt::xml_parser::no_comments);
      PTQ_CHECK(document.size() == 1 && document.begin()->first == "ptq",
                "{}: an XML config has one root element <ptq>, got {}", source,
                document.empty() ? "none" : "<" + document.begin()->first + ">");
      tree = document.begin()->second;
      reject_xml_attributes(document, "", source);
    } else if (format == "info") {
      // A "#" line is a directive; "#include" makes Boost read another file named by the text. A
      // config names its content explicitly (and an include of /dev/zero would never end).
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);)
        PTQ_CHECK(trim(line).rfind('#', 0) != 0,
                  "{}: directives (\"#include\") are not supported in INFO configs; write the keys "
                  "in the file",
                  source);
      if (info_depth_bound(text) > kMaxTreeDepth) fail_too_deep(source, "info");
      pt::read_info(in, tree);
    } else {
      fail("{}: unknown property-tree format \"{}\"; allowed: \"ini\", \"xml\", \"info\"", source,
           format);
    }
  } catch (const pt::file_parser_error& e) {
    fail("cannot parse {} as {}: line {}: {}", source, format, e.line(), e.message());
  }
  return TreeConverter::convert<PTQConfig>(tree, "", source);
}

}  // namespace ptq::config_detail
