#include "tools/ptq/inspect_quantization.h"

#include <fmt/format.h>

#include <map>

#include "framework/backend.h"
#include "framework/checkpoint_config.h"
#include "framework/checkpoint_layout.h"
#include "framework/error.h"
#include "framework/quantization_report.h"

namespace ptq::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Bytes of every stored-form tensor of a quantized layer.
int64_t stored_bytes(const TensorStore& store, const std::string& layer) {
  std::vector<std::string> suffixes = quantized_tensor_suffixes();
  suffixes.push_back("weight");
  int64_t bytes = 0;
  for (const auto& suffix : suffixes)
    if (store.has(layer + "." + suffix))
      bytes += static_cast<int64_t>(store.info(layer + "." + suffix).nbytes());
  return bytes;
}

}  // namespace

QuantizationInspection inspect_quantization(const fs::path& dir, const json& block,
                                            const TensorStore& store) {
  const std::string source = (dir / "config.json").string();
  QuantizationInspection out;
  out.json = {{"format", block.value("format", std::string())},
              {"ignore", block.value("ignore", json::array())}};
  out.properties.push_back({"quantization format", out.json["format"].get<std::string>()});

  std::string requested = "auto";
  try {
    PTQConfig config = ptq_config_from_block(block, source);
    config.mode = PTQMode::kQuantize;  // the recipe as it was run (loading always uses DEPLOY)
    requested = to_string(config.backend);
    out.json["config"] = config.to_json();
    out.json["summary"] = config.summary();
    out.properties.push_back({"quantization", config.summary()});
    out.properties.push_back({"requested backend", requested});
  } catch (const Error& e) {  // another tool's checkpoint: still describe its groups
    out.json["config"] = nullptr;
    out.properties.push_back({"quantization", std::string("no ptq config: ") + e.what()});
  }

  const std::vector<CheckpointGroup> groups = read_config_groups(block, source);
  json group_list = json::array();
  for (const auto& g : groups)
    group_list.push_back({{"name", g.name},
                          {"scheme", g.scheme.name()},
                          {"format", g.format},
                          {"targets", g.targets}});
  out.json["groups"] = group_list;

  register_builtin_backends();
  json layers = json::array();
  std::map<std::string, int> per_scheme;
  for (const auto& name : store.names()) {
    if (!ends_with(name, ".weight_scale")) continue;
    const std::string layer = name.substr(0, name.size() - std::string(".weight_scale").size());
    const CheckpointGroup* group = find_group(groups, layer);
    const std::string scheme =
        group ? group->scheme.name() : "unknown (no config group targets it)";
    const std::string format = group ? group->format : "";
    std::string backend_name = "-", note;
    if (group) {
      try {
        BackendChoice choice = select_backend(requested, group->scheme, torch::kCPU);
        backend_name = choice.backend->name();
        note = choice.fallback_reason;
      } catch (const Error& e) {
        backend_name = "none";
        note = e.what();
      }
    }
    const int64_t bytes = stored_bytes(store, layer);
    ++per_scheme[scheme];
    layers.push_back({{"name", layer},
                      {"scheme", scheme},
                      {"format", format},
                      {"stored_bytes", bytes},
                      {"backend", backend_name},
                      {"backend_note", note}});
    out.layers.add_row({layer, scheme, format, format_bytes(bytes), backend_name, note});
  }
  out.json["layers"] = layers;
  std::string counts;
  for (const auto& [scheme, n] : per_scheme)
    counts += fmt::format("{}{} x {}", counts.empty() ? "" : ", ", n, scheme);
  out.properties.push_back({"quantized layers", counts.empty() ? "none" : counts});
  const json& ignore = out.json["ignore"];
  out.properties.push_back({"float linears", ignore.is_array() && !ignore.empty()
                                                 ? ignore.dump()
                                                 : std::string("none")});
  return out;
}

}  // namespace ptq::cli
