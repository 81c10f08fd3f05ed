// ptq quantize: float model folder + recipe -> quantized checkpoint folder, optionally with the float and
// quantized perplexity side by side.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/quantization_report.h"
#include "framework/table.h"
#include "network_helpers/eval/perplexity.h"
#include "framework/output_folder.h"
#include "tools/ptq/cli_common.h"
#include "tools/ptq/cmd_quantize_stream.h"

namespace ptq::cli {
namespace fs = std::filesystem;
namespace {

struct QuantizeOptions {
  ModelOptions model;
  std::string config;
  std::string out;
  QuantizeCliOptions quantize;  // --calib, --backend, --inject-outliers
  std::string eval_data;
  PerplexityCliOptions eval;
  bool layers = false;
  bool json = false;
  bool stream = false;  // --stream: layer-streamed (tools/ptq/cmd_quantize_stream.h)
  bool resume = false;  // --resume: continue an interrupted --stream run
  bool no_float_fallback = false;  // --no-float-fallback: non-finite layer outputs are an error
  bool force = false;  // --force: replace a model folder another tool wrote (framework/output_folder.h)
};

void run_quantize(const QuantizeOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  PTQConfig config = load_quantize_recipe(o.config, o.quantize);
  check_output_folder(o.out, {{o.model.model_dir}, o.force});
  if (o.stream || o.resume) {
    PTQ_CHECK(o.quantize.inject_outliers.empty() && o.eval_data.empty(),
              "--stream/--resume never hold the whole model in memory, so they cannot take --inject-outliers or "
              "--eval-data (evaluate the checkpoint with `ptq eval` afterwards)");
    run_streamed_quantize({o.model, o.config, config, o.out, o.resume, o.layers, o.json, !o.no_float_fallback}, globals);
    return;
  }
  LoadedModel loaded = load_model(o.model);
  CausalLM& net = *loaded.network;
  apply_outlier_injection(loaded, o.quantize.inject_outliers);

  std::optional<PerplexityResult> float_ppl, quantized_ppl;
  std::vector<int64_t> eval_ids;
  const PerplexityOptions eval_options = o.eval.resolve(/*show_progress=*/!o.json && !globals.quiet);
  if (!o.eval_data.empty()) {
    eval_ids = evaluation_ids(loaded, o.eval_data, eval_options.protocol);
    float_ppl = evaluate_perplexity(net, eval_ids, eval_options);
  }

  PTQ algo(config);
  const QuantizeTimes times = quantize_network(algo, loaded, !o.no_float_fallback);
  const double apply_seconds = times.apply, convert_seconds = times.convert;
  const auto start = std::chrono::steady_clock::now();
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
                          {"inject_outliers", o.quantize.inject_outliers},
                          {"seconds", {{"apply", apply_seconds}, {"convert", convert_seconds}, {"save", save_seconds}}},
                          {"file_bytes", {{"float", float_file}, {"quantized", quantized_file}}},
                          {"report", report.to_json()}};
    if (float_ppl)
      out["eval"] = {{"data", o.eval_data},
                     {"window", eval_options.window},
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
  cmd->add_option("-o,--out", options->out,
                  "Output folder, replaced atomically if it is empty or a ptq checkpoint (never the model folder, "
                  "inside it, or around it)")
      ->required();
  cmd->add_flag("--force", options->force, "Also replace an --out folder holding a model another tool wrote");
  options->quantize.add_to(*cmd);
  cmd->add_option("--eval-data", options->eval_data,
                  "Also measure perplexity on this text before and after quantization, side by side")
      ->check(CLI::ExistingFile);
  options->eval.add_to(*cmd, " (with --eval-data)");
  cmd->add_flag("--layers", options->layers, "Print one row per linear layer");
  cmd->add_flag("--json", options->json, "Print one JSON object (report, sizes, perplexities)");
  cmd->add_flag("--stream", options->stream,
                "Layer-streamed: load one decoder layer's float weights at a time from the memory-mapped model, "
                "write its quantized tensors, release it; the same checkpoint in about one layer of memory. Records "
                "progress in OUT.partial after each layer (docs/ROBUSTNESS.md)");
  cmd->add_flag("--no-float-fallback", options->no_float_fallback,
                "A decoder layer whose quantized outputs are not finite is an error naming the linears, instead of "
                "keeping those linears in float (named in the summary and in the checkpoint's opname_blacklist)");
  cmd->add_flag("--resume", options->resume,
                "Continue an interrupted --stream run from OUT.partial (same arguments; refused if they differ); "
                "implies --stream");
  cmd->callback([options, &globals] { run_quantize(*options, globals); });
}

}  // namespace ptq::cli
