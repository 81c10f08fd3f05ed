// ptq bench: prefill and decode tokens/s and peak memory of a model folder (float or quantized), or of
// several measured one after the other in the same run, as ratios against the first.
#include <fmt/format.h>

#include <iostream>

#include "framework/log.h"
#include "framework/table.h"
#include "network_helpers/eval/throughput.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  std::vector<std::string> compare;  // more model folders, measured after --model
  ThroughputOptions throughput;
  bool json = false;
};

struct Measured {
  std::string model_dir;
  ThroughputResult result;
  // The weights in their checkpoint form (packed codes, scales and zero points of quantized layers; float
  // tensors in the dtype config.json declares), counted as `ptq compare` counts them.
  int64_t weight_bytes = 0;
};

// Loads, measures and releases one model: the next one starts from the memory the process had before.
Measured measure_one(const ModelOptions& model, const ThroughputOptions& throughput) {
  Measured m;
  m.model_dir = model.model_dir;
  reset_peak_rss();
  LoadedModel loaded = load_model(model);
  m.weight_bytes = checkpoint_tensor_bytes(*loaded.network);
  m.result = measure_throughput(*loaded.network, throughput);
  return m;
}

nlohmann::json to_json(const Measured& m) {
  const ThroughputResult& r = m.result;
  return {{"model", m.model_dir},
          {"prefill_tokens_per_second", r.prefill_tokens_per_second},
          {"decode_tokens_per_second", r.decode_tokens_per_second},
          {"prefill_seconds", r.prefill_seconds},
          {"decode_seconds", r.decode_seconds},
          {"kv_cache_bytes", r.kv_cache_bytes},
          {"weight_bytes", m.weight_bytes},
          {"peak_rss_bytes", r.peak_rss_bytes}};
}

std::string ratio_text(double value, double baseline) {
  return baseline > 0 ? fmt::format("{:.2f}x", value / baseline) : "-";
}

void run_bench(const BenchOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  std::vector<ModelOptions> models{o.model};
  for (const auto& dir : o.compare) {
    models.push_back(o.model);
    models.back().model_dir = dir;
  }
  std::vector<Measured> measured;
  for (size_t i = 0; i < models.size(); ++i) {
    if (models.size() > 1) log_info("bench {}/{}: {}", i + 1, models.size(), models[i].model_dir);
    measured.push_back(measure_one(models[i], o.throughput));
  }

  const auto& t = o.throughput;
  if (o.json) {
    nlohmann::json settings = {{"dtype", o.model.dtype},          {"device", o.model.device},
                               {"threads", at::get_num_threads()}, {"batch", t.batch},
                               {"prompt_tokens", t.prompt_tokens}, {"decode_tokens", t.decode_tokens}};
    if (measured.size() == 1) {
      nlohmann::json j = to_json(measured.front());
      j.update(settings);
      print_json(j);
    } else {
      nlohmann::json j = settings;
      for (const auto& m : measured) j["models"].push_back(to_json(m));
      print_json(j);
    }
    return;
  }
  std::cout << fmt::format("{} threads, batch {}, {} prompt tokens, {} decode tokens, {} {}\n",
                           at::get_num_threads(), t.batch, t.prompt_tokens, t.decode_tokens,
                           o.model.dtype, o.model.device);
  const Measured& first = measured.front();
  Table table({"model", "prefill tok/s", "vs first", "decode tok/s", "vs first", "weights MiB",
               "KV cache MiB", "vs first", "peak RSS MiB"});
  for (const auto& m : measured) {
    const ThroughputResult& r = m.result;
    table.add_row({std::filesystem::path(m.model_dir).filename().string(),
                   fmt::format("{:.1f}", r.prefill_tokens_per_second),
                   ratio_text(r.prefill_tokens_per_second, first.result.prefill_tokens_per_second),
                   fmt::format("{:.2f}", r.decode_tokens_per_second),
                   ratio_text(r.decode_tokens_per_second, first.result.decode_tokens_per_second),
                   fmt::format("{:.0f}", m.weight_bytes / 1048576.0),
                   fmt::format("{:.1f}", r.kv_cache_bytes / 1048576.0),
                   ratio_text(static_cast<double>(r.kv_cache_bytes),
                              static_cast<double>(first.result.kv_cache_bytes)),
                   fmt::format("{:.0f}", r.peak_rss_bytes / 1048576.0)});
  }
  std::cout << table.to_string();
}

}  // namespace

void add_bench_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prefill and decode tokens/s and peak memory of a model (or several, as ratios)");
  options->model.add_to(*cmd);
  cmd->add_option("--compare", options->compare,
                  "More model folders, measured after --model in the same run; the table shows "
                  "each one's speed and KV-cache size as a ratio against --model")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--batch", options->throughput.batch, "Sequences per batch")->check(CLI::PositiveNumber);
  cmd->add_option("--prompt-tokens", options->throughput.prompt_tokens, "Prompt length (prefill)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decode-tokens", options->throughput.decode_tokens, "Tokens decoded one at a time after it");
  cmd->add_option("--repeats", options->throughput.repeats, "Timed runs after one warm-up (best is reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", options->json, "Print one JSON object");
  cmd->callback([options, &globals] { run_bench(*options, globals); });
}

}  // namespace ptq::cli
