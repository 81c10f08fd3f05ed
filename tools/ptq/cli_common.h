// What every `ptq` subcommand shares: global options, model loading, JSON / table output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "network_helpers/llama/llama_network_helper.h"

namespace ptq::cli {

struct GlobalOptions {
  int threads = 0;     // 0: all cores
  bool quiet = false;  // no progress or info logs
  std::vector<std::string> plugins;  // --plugin FILE (repeatable): loaded before the subcommand runs
};

// Options of commands that load a model.
struct ModelOptions {
  std::string model_dir;
  std::string dtype = "float32";
  std::string device = "cpu";  // --device: cpu | cuda | cuda:N (torch::Device syntax)
  void add_to(CLI::App& command);
};

struct LoadedModel {
  std::shared_ptr<LlamaNetworkHelper> helper;
  std::shared_ptr<CausalLM> network;
};

// Applies --threads / --quiet / --json (which silences progress so stdout stays one JSON object).
void apply_runtime_options(const GlobalOptions& options, bool json_output);
LoadedModel load_model(const ModelOptions& options);
void print_json(const nlohmann::json& value);

// Each subcommand registers itself on the app; the callback runs it.
void add_quantize_command(CLI::App& app, const GlobalOptions& globals);
void add_eval_command(CLI::App& app, const GlobalOptions& globals);
void add_generate_command(CLI::App& app, const GlobalOptions& globals);
void add_inspect_command(CLI::App& app, const GlobalOptions& globals);
void add_tokenize_command(CLI::App& app, const GlobalOptions& globals);
void add_convert_llama2c_command(CLI::App& app, const GlobalOptions& globals);
void add_bench_command(CLI::App& app, const GlobalOptions& globals);
void add_make_random_model_command(CLI::App& app, const GlobalOptions& globals);
void add_algorithms_command(CLI::App& app, const GlobalOptions& globals);

// Loads every --plugin library in order (framework/plugin.h); throws ptq::Error naming a bad file.
void load_plugins(const GlobalOptions& globals);

}  // namespace ptq::cli
