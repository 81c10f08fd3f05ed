// LibTorch fp32 linear (OpenBLAS) at the shapes of the CPU-kernel targets: the baseline every quantized
// kernel's speed-up is a ratio against. Run: build/bench/bench_float_linear --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "framework/threads.h"

namespace {

void BM_FloatLinear(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({M, K});
  auto w = torch::randn({N, K});
  for (auto _ : state) benchmark::DoNotOptimize(torch::linear(x, w));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * K * N, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::OneK::kIs1000);
  state.counters["GB/s weights"] = benchmark::Counter(4.0 * K * N, benchmark::Counter::kIsIterationInvariantRate,
                                                      benchmark::Counter::OneK::kIs1000);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 16, 128, 512})
    for (auto kn : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {11008, 4096}})
      b->Args({m, kn.first, kn.second});
}

}  // namespace

BENCHMARK(BM_FloatLinear)->Apply(Shapes)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  ptq::configure_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
