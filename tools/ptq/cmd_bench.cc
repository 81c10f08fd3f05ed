// ptq bench: prefill and decode tokens/s and peak memory of a model folder (float or quantized).
#include <fmt/format.h>

#include <iostream>

#include "framework/table.h"
#include "network_helpers/eval/throughput.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  ThroughputOptions throughput;
  bool json = false;
};

void run_bench(const BenchOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  LoadedModel loaded = load_model(o.model);
  ThroughputResult r = measure_throughput(*loaded.network, o.throughput);
  const auto& t = o.throughput;
  if (o.json) {
    print_json({{"model", o.model.model_dir}, {"dtype", o.model.dtype}, {"threads", at::get_num_threads()},
                {"batch", t.batch}, {"prompt_tokens", t.prompt_tokens}, {"decode_tokens", t.decode_tokens},
                {"prefill_tokens_per_second", r.prefill_tokens_per_second},
                {"decode_tokens_per_second", r.decode_tokens_per_second},
                {"prefill_seconds", r.prefill_seconds}, {"decode_seconds", r.decode_seconds},
                {"kv_cache_bytes", r.kv_cache_bytes}, {"peak_rss_bytes", r.peak_rss_bytes}});
    return;
  }
  Table table({"model", "dtype", "threads", "batch", "prompt", "prefill tok/s", "decode tok/s", "KV cache MiB",
               "peak RSS MiB"});
  table.add_row({std::filesystem::path(o.model.model_dir).filename().string(), o.model.dtype,
                 std::to_string(at::get_num_threads()), std::to_string(t.batch), std::to_string(t.prompt_tokens),
                 fmt::format("{:.1f}", r.prefill_tokens_per_second), fmt::format("{:.2f}", r.decode_tokens_per_second),
                 fmt::format("{:.1f}", r.kv_cache_bytes / 1048576.0), fmt::format("{:.0f}", r.peak_rss_bytes / 1048576.0)});
  std::cout << table.to_string();
}

}  // namespace

void add_bench_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Prefill and decode tokens/s and peak memory of a model");
  options->model.add_to(*cmd);
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
