// The CPU backend's quantized Linear kernels next to LibTorch fp32 linear, at the shapes of the issue-4
// targets. Run: build-bench/bench/bench_cpu_kernels --benchmark_counters_tabular=true
// (cpu_kernel_report prints the same comparison as ratios, in a table and JSON.)
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "bench/cpu_kernel_cases.h"
#include "framework/threads.h"

namespace {

void BM_CpuKernel(benchmark::State& state) {
  const auto& c = ptq::bench::cpu_kernel_cases().at(state.range(0));
  const int64_t M = state.range(1), K = state.range(2), N = state.range(3);
  torch::NoGradGuard no_grad;
  auto w = torch::randn({N, K}) * 0.02;
  auto kernel = ptq::bench::make_cpu_kernel(c, w);
  auto x = torch::randn({M, K});
  state.SetLabel(kernel->name());
  for (auto _ : state) benchmark::DoNotOptimize(kernel->forward(x));
  state.counters["GB/s weights"] = benchmark::Counter(static_cast<double>(kernel->weight_bytes()),
                                                      benchmark::Counter::kIsIterationInvariantRate,
                                                      benchmark::Counter::OneK::kIs1000);
}

void BM_Fp32Linear(benchmark::State& state) {
  const int64_t M = state.range(1), K = state.range(2), N = state.range(3);
  torch::NoGradGuard no_grad;
  auto w = torch::randn({N, K});
  auto x = torch::randn({M, K});
  for (auto _ : state) benchmark::DoNotOptimize(torch::linear(x, w));
}

void Shapes(benchmark::internal::Benchmark* b, bool quantized) {
  const int64_t n_cases = quantized ? static_cast<int64_t>(ptq::bench::cpu_kernel_cases().size()) : 1;
  for (int64_t c = 0; c < n_cases; ++c)
    for (int64_t m : {1, 16, 128, 512})
      for (auto kn : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {11008, 4096}})
        b->Args({c, m, kn.first, kn.second});
}

}  // namespace

BENCHMARK(BM_Fp32Linear)->Apply([](auto* b) { Shapes(b, false); })->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CpuKernel)->Apply([](auto* b) { Shapes(b, true); })->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  ptq::configure_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
