#include "framework/checkpoint_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/json_limits.h"
#include "framework/kv_checkpoint.h"

namespace ptq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// compressed-tensors QuantizationArgs of the weights. observer "minmax" records how ptq's scales
// come out of the block range (docs/QUANTIZATION.md), whatever algorithm moved the weights before
// rounding.
json weight_args(const LinearScheme& s) {
  const bool group = s.group_size > 0;
  const char* strategy = group ? "group" : s.group_size == kPerTensor ? "tensor" : "channel";
  return {{"num_bits", s.weight_bits},
          {"type", "int"},
          {"symmetric", s.weight_symmetric},
          {"strategy", strategy},
          {"group_size", group ? json(s.group_size) : json(nullptr)},
          {"block_structure", nullptr},
          {"dynamic", false},
          {"actorder", nullptr},
          {"observer", "minmax"},
          {"observer_kwargs", json::object()}};
}

json input_args(const LinearScheme& s) {
  if (s.act == ActQuant::kNone) return nullptr;
  const bool dynamic = s.act == ActQuant::kInt8PerTokenDynamic;
  return {{"num_bits", 8},
          {"type", "int"},
          {"symmetric", s.act_symmetric},
          {"strategy", dynamic ? "token" : "tensor"},
          {"group_size", nullptr},
          {"block_structure", nullptr},
          {"dynamic", dynamic},
          {"actorder", nullptr},
          {"observer", dynamic ? json(nullptr) : json("minmax")},
          {"observer_kwargs", json::object()}};
}

// Reads a key of a compressed-tensors args object, naming the place when it is missing or mistyped.
template <typename T>
T get(const json& object, const char* key, const std::string& where) {
  PTQ_CHECK(object.is_object() && object.contains(key), "{}: \"{}\" is missing", where, key);
  try {
    return object.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: \"{}\" has the wrong type ({})", where, key, object.at(key).dump());
  }
}

LinearScheme scheme_from_args(const json& group, const std::string& where) {
  LinearScheme s;
  const json& w = group.contains("weights") ? group["weights"] : json(nullptr);
  PTQ_CHECK(w.is_object(),
            "{}: \"weights\" is missing or null (activation-only groups are not supported)", where);
  const std::string wwhere = where + ".weights";
  PTQ_CHECK(get<std::string>(w, "type", wwhere) == "int",
            "{}: type \"{}\" is not supported, expected \"int\"", wwhere,
            get<std::string>(w, "type", wwhere));
  s.weight_bits = get<int>(w, "num_bits", wwhere);
  s.weight_symmetric = get<bool>(w, "symmetric", wwhere);
  const std::string strategy = get<std::string>(w, "strategy", wwhere);
  if (strategy == "group")
    s.group_size = get<int64_t>(w, "group_size", wwhere);
  else if (strategy == "channel")
    s.group_size = kPerChannel;
  else if (strategy == "tensor")
    s.group_size = kPerTensor;
  else
    fail("{}: strategy \"{}\" is not supported, expected \"channel\", \"group\" or \"tensor\"",
         wwhere, strategy);

  const json& a = group.contains("input_activations") ? group["input_activations"] : json(nullptr);
  if (a.is_null()) return s;
  const std::string awhere = where + ".input_activations";
  const std::string astrategy = get<std::string>(a, "strategy", awhere);
  const bool dynamic = get<bool>(a, "dynamic", awhere);
  if (astrategy == "token" && dynamic)
    s.act = ActQuant::kInt8PerTokenDynamic;
  else if (astrategy == "tensor" && !dynamic)
    s.act = ActQuant::kInt8PerTensorStatic;
  else
    fail(
        "{}: strategy \"{}\" with dynamic {} is not supported, expected token/dynamic or "
        "tensor/static",
        awhere, astrategy, dynamic);
  s.act_symmetric = get<bool>(a, "symmetric", awhere);
  return s;
}

bool uses_groups(const PTQConfig& c) {
  if (c.weight_quant_granularity == QuantGranularity::kPerGroup) return true;
  for (const auto& p : c.layer_policies)
    if (p.weight_quant_granularity == QuantGranularity::kPerGroup) return true;
  return false;
}

}  // namespace

json quantization_config_json(const std::vector<QuantizedLayerEntry>& quantized,
                              const std::vector<std::string>& float_linears,
                              const PTQConfig& config) {
  // Groups in order of first appearance; LinearScheme::name() is unique per scheme.
  std::vector<std::pair<LinearScheme, std::vector<std::string>>> groups;
  std::map<std::string, size_t> index;
  for (const auto& layer : quantized) {
    auto [it, added] = index.emplace(layer.scheme.name(), groups.size());
    if (added) groups.push_back({layer.scheme, {}});
    groups[it->second].second.push_back(layer.name);
  }
  json config_groups = json::object();
  std::set<std::string> formats;
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& [scheme, names] = groups[i];
    const std::string format = to_string(compressed_format(scheme));
    formats.insert(format);
    // A single group covers every quantized linear: "Linear" (with the ignore list) says so.
    json targets = groups.size() == 1 ? json::array({"Linear"}) : json(names);
    config_groups[fmt::format("group_{}", i)] = {{"targets", targets},
                                                 {"weights", weight_args(scheme)},
                                                 {"input_activations", input_args(scheme)},
                                                 {"output_activations", nullptr},
                                                 {"format", format}};
  }
  const std::string format = formats.empty()       ? "pack-quantized"
                             : formats.size() == 1 ? *formats.begin()
                                                   : "mixed-precision";
  return {{"quant_method", "compressed-tensors"},
          {"format", format},
          {"quantization_status", "compressed"},
          {"config_groups", config_groups},
          {"ignore", float_linears},
          {"kv_cache_scheme", kv_cache_scheme_json(config)},
          {"ptq", {{"format_version", kCheckpointFormatVersion}, {"config", config.to_json()}}}};
}

std::vector<CheckpointGroup> read_config_groups(const json& quantization_config,
                                                const std::string& source) {
  std::vector<CheckpointGroup> out;
  const json& groups =
      quantization_config.contains("config_groups") ? quantization_config["config_groups"] : json();
  PTQ_CHECK(groups.is_object(), "{}: quantization_config.config_groups is missing or not an object",
            source);
  for (const auto& [name, group] : groups.items()) {
    const std::string where = fmt::format("{}: quantization_config.config_groups.{}", source, name);
    CheckpointGroup g;
    g.name = name;
    g.targets = get<std::vector<std::string>>(group, "targets", where);
    g.scheme = scheme_from_args(group, where);
    g.format = group.contains("format") && group["format"].is_string()
                   ? group["format"].get<std::string>()
                   : quantization_config.value("format", std::string());
    out.push_back(std::move(g));
  }
  return out;
}

const CheckpointGroup* find_group(const std::vector<CheckpointGroup>& groups,
                                  const std::string& layer) {
  for (const auto& g : groups)
    if (std::find(g.targets.begin(), g.targets.end(), layer) != g.targets.end()) return &g;
  for (const auto& g : groups)
    if (std::find(g.targets.begin(), g.targets.end(), "Linear") != g.targets.end()) return &g;
  return nullptr;
}

PTQConfig ptq_config_from_block(const json& q, const std::string& source) {
  PTQ_CHECK(q.is_object(), "{}: quantization_config is not an object", source);
  const std::string method = q.value("quant_method", std::string());
  PTQ_CHECK(method == "compressed-tensors",
            "{}: quantization_config.quant_method is \"{}\"; ptq loads only the compressed-tensors "
            "checkpoints it "
            "writes",
            source, method);
  PTQ_CHECK(
      q.contains("ptq") && q["ptq"].is_object(),
      "{}: this compressed-tensors checkpoint has no quantization_config.ptq block, so it was "
      "written by "
      "another tool (e.g. llm-compressor); ptq rebuilds a network only from checkpoints it wrote",
      source);
  const json& block = q["ptq"];
  PTQ_CHECK(block.contains("format_version") && block["format_version"].is_number_integer(),
            "{}: quantization_config.ptq.format_version is missing or not an integer", source);
  const int version = block["format_version"].get<int>();
  PTQ_CHECK(version >= 1 && version <= kCheckpointFormatVersion,
            "{}: checkpoint format version {} is not one this ptq reads (1..{}); {}", source,
            version, kCheckpointFormatVersion,
            version > kCheckpointFormatVersion
                ? "it was written by a newer ptq: upgrade ptq to load it"
                : "the file is damaged");
  PTQ_CHECK(block.contains("config") && block["config"].is_object(),
            "{}: quantization_config.ptq.config is missing or not an object", source);
  json config = block["config"];
  config["mode"] = "deploy";  // a checkpoint is always loaded into a DEPLOY structure
  return PTQConfig::from_json(config, source + ": quantization_config.ptq.config");
}

void check_same_structure(const PTQConfig& checkpoint, const PTQConfig& network,
                          const std::string& source) {
  json a = checkpoint.to_json(), b = network.to_json();
  for (const char* key :
       {"version", "mode", "backend", "calibration", "act_observer", "act_percentile",
        "outliers_suppression", "precision_recovery", "rounding", "algo_args"}) {
    a.erase(key);
    b.erase(key);
  }
  // group_size means nothing unless some layer is quantized per group (recipes' defaults differ).
  if (!uses_groups(checkpoint) && !uses_groups(network)) {
    a.erase("group_size");
    b.erase("group_size");
  }
  for (const auto& [key, value] : a.items()) {
    const json other = b.contains(key) ? b[key] : json(nullptr);
    PTQ_CHECK(value == other,
              "{}: the checkpoint was quantized with \"{}\": {}, but the network's quantized "
              "structure was built "
              "with \"{}\": {}; build the network from the checkpoint's own config "
              "(read_checkpoint_config, or "
              "simply load_quantized)",
              source, key, value.dump(), key, other.dump());
  }
  for (const auto& [key, value] : b.items())
    PTQ_CHECK(a.contains(key),
              "{}: the network's config has \"{}\": {}, which the checkpoint's config lacks",
              source, key, value.dump());
}

json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open", path.string());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_json_bounded(text, path.string());
}

}  // namespace ptq
