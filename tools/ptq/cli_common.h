// What every `ptq` subcommand shares: global options, model loading, JSON / table output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/group_scaling.h"
#include "algorithms/ptq.h"
#include "framework/ptq_config.h"
#include "network_helpers/eval/perplexity.h"
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

// ---- Perplexity options (ptq eval, ptq quantize --eval-data, ptq compare) ----------------------------

struct PerplexityCliOptions {
  std::string protocol = "windows";
  int64_t window = 0;  // 0: the protocol's default (512 windows, 2048 gptq)
  int64_t batch = 1;
  int64_t max_windows = 0;
  // Adds --protocol, -w/--window, --batch, --max-windows; `window_note` ends the --window help.
  void add_to(CLI::App& command, const std::string& window_note = "");
  PerplexityOptions resolve(bool show_progress) const;
};

// The ids of a text file as `protocol` scores them, tokenized with the model's tokenizer.
std::vector<int64_t> evaluation_ids(const LoadedModel& loaded, const std::string& file, PerplexityProtocol protocol);

// ---- Quantizing (ptq quantize, ptq compare) -----------------------------------------------------------

// Options that change a recipe or the float model before quantizing.
struct QuantizeCliOptions {
  std::string calib;            // --calib: overrides calibration.dataset
  std::string backend;          // --backend: overrides the config's backend
  std::string inject_outliers;  // --inject-outliers CHANNELS:FACTOR, empty: off
  void add_to(CLI::App& command);
};

// A recipe file that must be a QUANTIZE config, with --calib / --backend applied. Errors name the file.
PTQConfig load_quantize_recipe(const std::string& config_file, const QuantizeCliOptions& options);

// "8:50" -> 8 channels, factor 50 (the report tool of algorithms/group_scaling.h).
OutlierInjection parse_outlier_injection(const std::string& text);
// --inject-outliers: changes the float network (function-preserving) when `spec` is not empty.
void apply_outlier_injection(LoadedModel& loaded, const std::string& spec);

struct QuantizeTimes {
  double apply = 0;    // seconds, calibration included
  double convert = 0;  // seconds
  double total() const { return apply + convert; }
};
// algo.apply + algo.convert on the loaded network, timed: what `ptq quantize` does before saving.
// `float_fallback`: LayerwiseOptions::float_fallback (--no-float-fallback turns it off).
QuantizeTimes quantize_network(PTQ& algo, LoadedModel& loaded, bool float_fallback = true);

double seconds_since(std::chrono::steady_clock::time_point start);

// Bytes of the weight files in a model folder (*.safetensors).
int64_t weight_file_bytes(const std::filesystem::path& dir);

// Bytes of the tensors a checkpoint of `net` holds (save_checkpoint's rules: quantized linears in their
// compressed-tensors layout, float tensors in the source's 16-bit dtype when config.json declares one,
// a tied lm_head once), measured in memory without writing it. The safetensors headers are not counted.
int64_t checkpoint_tensor_bytes(const CausalLM& net);

// Each subcommand registers itself on the app; the callback runs it.
void add_quantize_command(CLI::App& app, const GlobalOptions& globals);
void add_eval_command(CLI::App& app, const GlobalOptions& globals);
void add_compare_command(CLI::App& app, const GlobalOptions& globals);
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
