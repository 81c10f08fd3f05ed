// The issue-7 comparison table: CUDA-backend kernels (W4A16, W8A8, W8A16) against torch fp16 linear (cuBLAS)
// in the same run, at M in {1, 16, 2048, 4096} (--rows) and (K, N) in {(4096, 4096), (4096, 11008),
// (11008, 4096)}. Prints a markdown table of speed-ups (fp16 time / kernel time) and writes the rows as JSON.
// Run (GPU machine): build-gpu/bench/cuda_kernel_report --json $OUT/cuda_kernel_report.json
// Timing: CUDA events around `reps` back-to-back calls, captured once into a CUDA graph and replayed (so
// host-side launch overhead, identical for both sides' PyTorch glue, does not hide microsecond kernels;
// --no-graph times the plain loop). Each call uses the next of several copies of the weights, enough
// copies that they do not fit in L2 together (a decode kernel re-reading an L2-resident weight would
// measure the cache, not HBM). Median of `trials` replays. The timing loop is bench/cuda_graph_timer.h.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <vector>

#include "bench/cuda_report_setup.h"
#include "bench/report_util.h"
#include "framework/backend.h"
#include "framework/quantized_weight.h"

namespace {

struct Case {
  std::string label;
  int bits;
  int64_t group;
  bool symmetric;
  ptq::ActQuant act;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CUDA quantized kernels vs torch fp16 linear (cuBLAS)"};
  std::string json_path;
  std::vector<int64_t> rows = {1, 16, 2048, 4096};
  ptq::bench::GraphTiming o;
  app.add_option("--json", json_path, "Write the rows as JSON to this file");
  app.add_option("--rows", rows, "Values of M");
  ptq::bench::add_timing_options(app, o);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto setup = ptq::bench::cuda_report_setup();
    if (!setup) return 1;
    torch::NoGradGuard no_grad;
    const auto& [cuda, dev, prop, l2] = *setup;
    const std::vector<Case> cases = {
        {"w4a16-g128-asym", 4, 128, false, ptq::ActQuant::kNone},
        {"w4a16-g128-sym", 4, 128, true, ptq::ActQuant::kNone},
        {"w8a8-dynamic", 8, ptq::kPerChannel, true, ptq::ActQuant::kInt8PerTokenDynamic},
        {"w8a16", 8, ptq::kPerChannel, true, ptq::ActQuant::kNone},
        {"w8a16-g128-asym", 8, 128, false, ptq::ActQuant::kNone},
    };
    nlohmann::json out = nlohmann::json::array();
    std::cout << fmt::format("device: {} ({} SMs, L2 {} MiB); speed-up = fp16 time / kernel time\n\n", prop.name,
                             prop.multiProcessorCount, l2 >> 20);
    std::string header = "| M | K | N | fp16 us |", rule = "|---|---|---|---|";
    for (const auto& c : cases) {
      header += fmt::format(" {} us | {} x |", c.label, c.label);
      rule += "---|---|";
    }
    std::cout << header << "\n" << rule << std::endl;
    for (auto [K, N] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {11008, 4096}}) {
      // Enough copies that the int4 weights together are 4x the L2 (and the others larger still).
      const int copies = static_cast<int>(std::max<int64_t>(2, (4 * l2) / (N * K / 2) + 1));
      auto w = torch::randn({N, K}, dev) * 0.02;
      std::vector<torch::Tensor> w16;
      for (int i = 0; i < copies; ++i) w16.push_back(w.to(torch::kHalf).clone());
      std::vector<std::vector<std::shared_ptr<ptq::LinearKernel>>> kernels(cases.size());
      for (size_t ci = 0; ci < cases.size(); ++ci) {
        ptq::WeightQuantSpec spec;
        spec.bits = cases[ci].bits;
        spec.group_size = cases[ci].group;
        spec.symmetric = cases[ci].symmetric;
        ptq::QuantizedLinearParams p;
        p.weight = ptq::quantize_weight(w, spec);
        p.act = cases[ci].act;
        for (int i = 0; i < copies; ++i) kernels[ci].push_back(cuda->make_linear_kernel(p, torch::kHalf));
      }
      for (int64_t M : rows) {
        auto x = torch::randn({M, K}, dev).to(torch::kHalf);
        bool graphed = false;
        const double fp16 = ptq::bench::time_ms([&](int i) { torch::linear(x, w16[i % copies]); }, o, &graphed);
        std::string line = fmt::format("| {} | {} | {} | {:.1f} |", M, K, N, fp16 * 1e3);
        nlohmann::json row = {{"M", M}, {"K", K}, {"N", N}, {"fp16_us", fp16 * 1e3}, {"weight_copies", copies},
                              {"cuda_graph", graphed}};
        for (size_t ci = 0; ci < cases.size(); ++ci) {
          const double t = ptq::bench::time_ms([&](int i) { kernels[ci][i % copies]->forward(x); }, o, &graphed);
          line += fmt::format(" {:.1f} | {:.2f}x |", t * 1e3, fp16 / t);
          row[cases[ci].label] = {{"us", t * 1e3}, {"speedup", fp16 / t}, {"kernel", kernels[ci][0]->name()}};
        }
        std::cout << line << std::endl;
        out.push_back(row);
      }
    }
    ptq::bench::write_json_rows(json_path, out);
  } catch (const std::exception& e) {
    std::cerr << "cuda_kernel_report: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
