// ptq quantize: float model folder + recipe -> quantized checkpoint folder, optionally with the float and
// quantized perplexity side by side.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "algorithms/group_scaling.h"
#include "algorithms/ptq.h"
#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/quantization_report.h"
#include "framework/table.h"
#include "network_helpers/eval/perplexity.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace fs = std::filesystem;
namespace {

struct QuantizeOptions {
  ModelOptions model;
  std::string config;
  std::string out;
  std::string calib;
  std::string backend;
  std::string eval_data;
  int64_t window = 512;
  int64_t max_windows = 0;
  std::string inject_outliers;  // "CHANNELS:FACTOR", empty: off
  bool layers = false;
  bool json = false;
};

// "8:50" -> 8 channels, factor 50 (the report tool of algorithms/group_scaling.h).
OutlierInjection parse_outlier_injection(const std::string& text) {
  OutlierInjection injection;
  const size_t colon = text.find(':');
  try {
    PTQ_CHECK(colon != std::string::npos, "");
    size_t used = 0;
    injection.channels = std::stoll(text.substr(0, colon), &used);
    PTQ_CHECK(used == colon, "");
    const std::string factor = text.substr(colon + 1);
    injection.factor = std::stod(factor, &used);
    PTQ_CHECK(used == factor.size(), "");
  } catch (const std::exception&) {
    fail("--inject-outliers \"{}\": expected CHANNELS:FACTOR, e.g. 8:50", text);
  }
  PTQ_CHECK(injection.channels > 0 && injection.factor > 0,
            "--inject-outliers \"{}\": channels and factor must be positive", text);
  return injection;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Bytes of the weight files in a model folder (*.safetensors).
int64_t weight_file_bytes(const fs::path& dir) {
  int64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") total += entry.file_size();
  return total;
}

void run_quantize(const QuantizeOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  PTQConfig config = PTQConfig::from_file(o.config);
  PTQ_CHECK(config.mode == PTQMode::kQuantize,
            "{}: mode is \"deploy\"; ptq quantize needs \"quantize\" (deploy configs are for loading checkpoints)",
            o.config);
  if (!o.calib.empty()) config.calibration.dataset = o.calib;
  if (!o.backend.empty()) {
    nlohmann::json j = config.to_json();
    j["backend"] = o.backend;
    config = PTQConfig::from_json(j, "--backend");
  }
  LoadedModel loaded = load_model(o.model);
  CausalLM& net = *loaded.network;
  if (!o.inject_outliers.empty()) {
    const OutlierInjection injection = parse_outlier_injection(o.inject_outliers);
    const int64_t groups = inject_outliers(net, *loaded.helper, injection);
    log_info("injected outliers: {} channels x {} in {} norm -> linear groups (the float function is unchanged)",
             injection.channels, injection.factor, groups);
  }

  std::optional<PerplexityResult> float_ppl, quantized_ppl;
  std::vector<int64_t> eval_ids;
  PerplexityOptions eval_options;
  eval_options.window = o.window;
  eval_options.max_windows = o.max_windows;
  eval_options.show_progress = !o.json && !globals.quiet;
  if (!o.eval_data.empty()) {
    auto tokenizer = loaded.helper->create_tokenizer();
    eval_ids = tokenize_for_perplexity(*tokenizer, read_evaluation_text(o.eval_data, eval_options.protocol),
                                       eval_options.protocol);
    float_ppl = evaluate_perplexity(net, eval_ids, eval_options);
  }

  PTQ algo(config);
  auto start = std::chrono::steady_clock::now();
  algo.apply(net, *loaded.helper);
  const double apply_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  algo.convert(net);
  const double convert_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  save_checkpoint(net, o.out);
  const double save_seconds = seconds_since(start);
  if (float_ppl) quantized_ppl = evaluate_perplexity(net, eval_ids, eval_options);

  const QuantizationReport& report = algo.report();
  const int64_t float_file = weight_file_bytes(o.model.model_dir);
  const int64_t quantized_file = weight_file_bytes(o.out);
  if (o.json) {
    nlohmann::json out = {{"model", o.model.model_dir},
                          {"config", o.config},
                          {"recipe", config.summary()},
                          {"out", o.out},
                          {"composition", algo.composition()},
                          {"inject_outliers", o.inject_outliers},
                          {"seconds", {{"apply", apply_seconds}, {"convert", convert_seconds}, {"save", save_seconds}}},
                          {"file_bytes", {{"float", float_file}, {"quantized", quantized_file}}},
                          {"report", report.to_json()}};
    if (float_ppl)
      out["eval"] = {{"data", o.eval_data},
                     {"window", o.window},
                     {"float_ppl", float_ppl->perplexity},
                     {"quantized_ppl", quantized_ppl->perplexity}};
    print_json(out);
    return;
  }
  std::cout << fmt::format("{} -> {}: {}\n", o.model.model_dir, o.out, config.summary());
  std::cout << report.summary_table();
  if (report.fallback_count() > 0)
    std::cout << fmt::format("{} layers not quantized as configured:\n{}", report.fallback_count(),
                             report.fallback_list());
  if (o.layers) std::cout << report.layer_table();
  std::cout << fmt::format("apply {:.1f} s, convert {:.1f} s, save {:.1f} s\n", apply_seconds, convert_seconds,
                           save_seconds);
  Table table({"model", "weight files", float_ppl ? "perplexity" : "", float_ppl ? "change" : ""});
  auto ppl_cell = [](const std::optional<PerplexityResult>& r) {
    return r ? fmt::format("{:.4f}", r->perplexity) : std::string();
  };
  table.add_row({"float", format_bytes(float_file), ppl_cell(float_ppl), ""});
  table.add_row({"quantized", format_bytes(quantized_file), ppl_cell(quantized_ppl),
                 float_ppl ? fmt::format("{:+.2f}%", 100.0 * (quantized_ppl->perplexity / float_ppl->perplexity - 1))
                           : ""});
  std::cout << table.to_string();
}

}  // namespace

void add_quantize_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a float model folder with a recipe and save the checkpoint");
  options->model.add_to(*cmd);
  cmd->add_option("-c,--config", options->config, "Recipe: .json, .ini, .xml or .info (see configs/ and docs/CONFIG.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", options->out, "Output folder (replaced atomically if it exists)")->required();
  cmd->add_option("--calib", options->calib,
                  "Calibration text file (overrides calibration.dataset; default ../shared/data/corpus/train_00.txt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--backend", options->backend, "Override the config's backend: reference, cpu, cuda or auto");
  cmd->add_option("--eval-data", options->eval_data,
                  "Also measure perplexity on this text before and after quantization, side by side")
      ->check(CLI::ExistingFile);
  cmd->add_option("-w,--window", options->window, "Perplexity window in tokens (with --eval-data)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-windows", options->max_windows, "Score only the first N windows (0: all)");
  cmd->add_option("--inject-outliers", options->inject_outliers,
                  "CHANNELS:FACTOR: before quantizing, give CHANNELS random input channels of every norm -> linear "
                  "group FACTOR x larger activations, function-preserving (a test of outlier handling; "
                  "docs/ACCURACY.md)");
  cmd->add_flag("--layers", options->layers, "Print one row per linear layer");
  cmd->add_flag("--json", options->json, "Print one JSON object (report, sizes, perplexities)");
  cmd->callback([options, &globals] { run_quantize(*options, globals); });
}

}  // namespace ptq::cli
