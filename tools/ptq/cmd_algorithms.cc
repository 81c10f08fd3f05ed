// ptq algorithms: what the algorithm registry holds (built-ins and what --plugin loaded), so a user can
// check that a plugin registered the name their config's "rounding" uses.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <map>

#include "framework/algorithm.h"
#include "framework/log.h"
#include "framework/plugin.h"
#include "framework/table.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

void run_algorithms(bool json, const GlobalOptions& globals) {
  apply_runtime_options(globals, json);
  std::map<std::string, std::string> plugin_of;  // algorithm -> the plugin file that registered it
  nlohmann::json plugins = nlohmann::json::array();
  for (const PluginInfo& plugin : loaded_plugins()) {
    for (const auto& name : plugin.algorithms) plugin_of[name] = plugin.path.string();
    plugins.push_back({{"path", plugin.path.string()}, {"algorithms", plugin.algorithms}, {"backends", plugin.backends}});
  }
  nlohmann::json algorithms = nlohmann::json::array();
  Table table({"algorithm", "description", "from"});
  for (const AlgorithmInfo& info : available_algorithms()) {
    const auto it = plugin_of.find(info.name);
    const bool from_plugin = it != plugin_of.end();
    algorithms.push_back({{"name", info.name},
                          {"description", info.description},
                          {"plugin", from_plugin ? nlohmann::json(it->second) : nlohmann::json(nullptr)}});
    table.add_row({info.name, info.description, from_plugin ? it->second : "built-in"});
  }
  if (json) {
    print_json({{"algorithms", algorithms}, {"plugins", plugins}});
    return;
  }
  std::cout << table.to_string();
}

}  // namespace

void add_algorithms_command(CLI::App& app, const GlobalOptions& globals) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "algorithms", "List the registered algorithms (built-ins and those of --plugin libraries) for \"rounding\"");
  cmd->add_flag("--json", *json, "Print one JSON object");
  cmd->callback([json, &globals] { run_algorithms(*json, globals); });
}

void load_plugins(const GlobalOptions& globals) {
  for (const auto& path : globals.plugins) {
    const PluginInfo info = load_plugin(path);
    log_debug("--plugin {}: algorithms [{}], backends [{}]", info.path.string(), fmt::join(info.algorithms, ", "),
              fmt::join(info.backends, ", "));
  }
}

}  // namespace ptq::cli
