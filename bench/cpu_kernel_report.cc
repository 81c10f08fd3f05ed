// The issue-4 comparison table: each CPU-backend kernel's speed-up over LibTorch fp32 linear (OpenBLAS)
// measured in the same run, at M in {1, 16, 128, 512} and (K, N) in {(4096, 4096), (4096, 11008),
// (11008, 4096)}. Prints a table and writes the rows as JSON.
// Run: build-bench/bench/cpu_kernel_report --json docs/cpu_kernel_report.json   (about 2-3 minutes)
//      --shape K N (repeatable) replaces the three shapes, e.g. the TinyLlama ones: --shape 2048 256 --shape 2048 2048
// Timing: one warm-up call, then calls until --min-time seconds and at least 3 calls; the median counts.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <iostream>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/onednn_int8_linear.h"
#include "bench/cpu_kernel_cases.h"
#include "bench/report_util.h"
#include "framework/threads.h"

namespace {

// Milliseconds per call, median of at least 3 timed calls (bench/report_util.h).
double median_ms(const std::function<void()>& call, double min_seconds) {
  return ptq::bench::median_seconds(call, min_seconds, 3) * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU quantized kernels vs LibTorch fp32 linear"};
  std::string json_path;
  double min_time = 0.3;
  int threads = 0;
  std::vector<int64_t> rows = {1, 16, 128, 512};
  app.add_option("--json", json_path, "Write the rows as JSON to this file");
  app.add_option("--min-time", min_time, "Seconds of timed calls per measurement (at least 3 calls)");
  app.add_option("--threads", threads, "Intra-op threads (0: all cores)");
  app.add_option("--rows", rows, "Values of M");
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
  app.add_option("--shape", shapes, "K and N of one weight (repeatable), e.g. --shape 2048 256 (TinyLlama k/v)")
      ->expected(2)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  CLI11_PARSE(app, argc, argv);
  try {
    const int n_threads = ptq::configure_threads(threads);
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    const auto& cases = ptq::bench::cpu_kernel_cases();
    nlohmann::json out = nlohmann::json::array();
    std::cout << fmt::format("threads {}, cpu: {}; speed-up = fp32 time / kernel time\n", n_threads,
                             ptq::cpu::cpu_feature_summary());
    std::string header = fmt::format("{:>4} {:>6} {:>6} {:>10}", "M", "K", "N", "fp32 ms");
    for (const auto& c : cases) header += fmt::format(" {:>12}", c.label);
    std::cout << header << "\n";
    for (auto [K, N] : shapes) {
      auto w = torch::randn({N, K}) * 0.02;
      std::vector<std::shared_ptr<ptq::LinearKernel>> kernels;
      for (const auto& c : cases) kernels.push_back(ptq::bench::make_cpu_kernel(c, w));
      for (int64_t M : rows) {
        auto x = torch::randn({M, K});
        const double fp32 = median_ms([&] { torch::linear(x, w); }, min_time);
        std::string line = fmt::format("{:>4} {:>6} {:>6} {:>10.3f}", M, K, N, fp32);
        nlohmann::json row = {{"M", M}, {"K", K}, {"N", N}, {"fp32_ms", fp32}, {"threads", n_threads}};
        for (size_t i = 0; i < cases.size(); ++i) {
          const double t = median_ms([&] { kernels[i]->forward(x); }, min_time);
          line += fmt::format(" {:>11.2f}x", fp32 / t);
          row[cases[i].label] = {{"ms", t}, {"speedup", fp32 / t}, {"kernel", kernels[i]->name()}};
          // The oneDNN implementation can differ per M (a "ref_" one is the slow fallback).
          if (kernels[i]->name().find("onednn") != std::string::npos) {
            row[cases[i].label]["onednn_implementation"] = ptq::cpu::onednn_int8_implementation(*kernels[i], M);
          }
        }
        std::cout << line << std::endl;
        out.push_back(row);
      }
    }
    ptq::bench::write_json_rows(json_path, out);
  } catch (const std::exception& e) {
    std::cerr << "cpu_kernel_report: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
