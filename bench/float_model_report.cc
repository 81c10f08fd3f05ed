// Float baseline report: prefill and decode tokens/s of model folders (e.g. ptq-small-32m and a
// TinyLlama-1.1B-shaped random model from `ptq make-random-model --preset tinyllama-1.1b`), fp32 and
// bf16 compute, as a table (and --json). These are the numbers quantized kernels are compared against.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

#include "framework/table.h"
#include "framework/threads.h"
#include "network_helpers/eval/throughput.h"
#include "network_helpers/llama/llama_loader.h"

int main(int argc, char** argv) {
  CLI::App app{"Float prefill/decode throughput of model folders"};
  std::vector<std::string> models;
  std::vector<std::string> dtypes = {"float32"};
  ptq::ThroughputOptions options;
  options.repeats = 2;
  bool json = false;
  app.add_option("models", models, "Model folders")->required()->check(CLI::ExistingDirectory);
  app.add_option("--dtypes", dtypes, "Compute dtypes to measure (float32 bfloat16)");
  app.add_option("--prompt-tokens", options.prompt_tokens, "Prefill length");
  app.add_option("--decode-tokens", options.decode_tokens, "Decode steps");
  app.add_option("--repeats", options.repeats, "Timed runs (best reported)");
  app.add_flag("--json", json, "Also print the rows as JSON");
  CLI11_PARSE(app, argc, argv);

  int threads = ptq::configure_threads(0);
  ptq::Table table({"model", "params (M)", "dtype", "prefill tok/s", "decode tok/s", "decode ms/token", "peak RSS MiB"});
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& dir : models) {
    for (const auto& dtype : dtypes) {
      ptq::LoadOptions load;
      load.compute_dtype = ptq::parse_compute_dtype(dtype);
      auto net = ptq::load_llama(dir, load);
      auto r = ptq::measure_throughput(*net, options);
      double params = net->spec().parameter_count() / 1e6;
      std::string name = std::filesystem::path(dir).filename().string();
      table.add_row({name, fmt::format("{:.1f}", params), dtype, fmt::format("{:.1f}", r.prefill_tokens_per_second),
                     fmt::format("{:.2f}", r.decode_tokens_per_second),
                     fmt::format("{:.1f}", 1000.0 / r.decode_tokens_per_second),
                     fmt::format("{:.0f}", r.peak_rss_bytes / 1048576.0)});
      rows.push_back({{"model", name}, {"dtype", dtype}, {"params_millions", params},
                      {"prefill_tokens_per_second", r.prefill_tokens_per_second},
                      {"decode_tokens_per_second", r.decode_tokens_per_second}});
    }
  }
  std::cout << fmt::format("threads {}, prompt {} tokens, {} decode steps, batch 1, best of {}\n", threads,
                           options.prompt_tokens, options.decode_tokens, options.repeats)
            << table.to_string();
  if (json) std::cout << rows.dump(2) << std::endl;
  return 0;
}
