// Decode attention over the int8 KV cache (CPU backend, AVX-512) against the float cache (fp32, LibTorch
// attention as the framework runs it today), measured in the same run: one token of 32 query heads,
// S in {512, 2048, 4096}, head_dim 64/128, MHA and GQA (32/8, 32/4). Prints times, speed-ups
// (float time / int8 time) and KV memory, and writes the rows as JSON.
// Run: build-bench/bench/kv_attention_report --json docs/perf/kv_attention_report.json
// Timing: one warm-up call, then calls until --min-time seconds and at least 5 calls; the median counts.
// The order of the caches is rotated between shapes, so a load change does not always hit the same one.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "bench/kv_attention_cases.h"
#include "bench/report_util.h"
#include "framework/threads.h"

namespace {

// Microseconds per call, median of at least 5 timed calls (bench/report_util.h).
double median_us(const std::function<void()>& call, double min_seconds) {
  return ptq::bench::median_seconds(call, min_seconds, 5) * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"int8 KV-cache decode attention vs the float cache"};
  std::string json_path;
  double min_time = 0.3;
  int threads = 0;
  app.add_option("--json", json_path, "Write the rows as JSON to this file");
  app.add_option("--min-time", min_time, "Seconds of timed calls per measurement (at least 5 calls)");
  app.add_option("--threads", threads, "Intra-op threads (0: all cores)");
  CLI11_PARSE(app, argc, argv);
  try {
    const int n_threads = ptq::configure_threads(threads);
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    const auto& kinds = ptq::bench::kv_cache_kinds();
    std::cout << fmt::format("threads {}, cpu: {}; decode: 1 token, 32 query heads, batch 1; speed-up = float time / "
                             "time\n",
                             n_threads, ptq::cpu::cpu_feature_summary());
    std::cout << fmt::format("{:>4} {:>4} {:>5} {:>10} {:>13} {:>13} {:>16} {:>9} {:>9} {:>8}\n", "Hkv", "D", "S",
                             "float us", "int8-dyn-ref", "int8-dyn-cpu", "int8-static-cpu", "float MiB",
                             "int8 MiB", "ratio");
    nlohmann::json out = nlohmann::json::array();
    int rotation = 0;
    for (const auto& s : ptq::bench::kv_attention_shapes()) {
      auto q = torch::randn({1, s.H, 1, s.D});
      auto allowed = torch::ones({1, 1, s.S}, torch::kBool);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
      std::map<std::string, double> us;
      std::map<std::string, int64_t> bytes;
      std::vector<std::string> order = kinds;
      std::rotate(order.begin(), order.begin() + (rotation++ % order.size()), order.end());
      for (const auto& kind : order) {
        auto cache = ptq::bench::make_filled_kv_cache(kind, s);
        us[kind] = median_us([&] { cache->attend(q, allowed, scale); }, min_time);
        bytes[kind] = cache->memory_bytes();
      }
      const double f = us["float"];
      std::cout << fmt::format("{:>4} {:>4} {:>5} {:>10.1f} {:>12.2f}x {:>12.2f}x {:>15.2f}x {:>9.2f} {:>9.2f} {:>8.3f}",
                               s.Hkv, s.D, s.S, f, f / us["int8-dyn-ref"], f / us["int8-dyn-cpu"],
                               f / us["int8-static-cpu"], bytes["float"] / 1048576.0,
                               bytes["int8-dyn-cpu"] / 1048576.0,
                               static_cast<double>(bytes["int8-dyn-cpu"]) / bytes["float"])
                << std::endl;
      nlohmann::json row = {{"H", s.H}, {"Hkv", s.Hkv}, {"D", s.D}, {"S", s.S}, {"threads", n_threads}};
      for (const auto& kind : kinds) row[kind] = {{"us", us[kind]}, {"speedup", f / us[kind]}, {"kv_bytes", bytes[kind]}};
      out.push_back(row);
    }
    ptq::bench::write_json_rows(json_path, out);
  } catch (const std::exception& e) {
    std::cerr << "kv_attention_report: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
