// Decode attention (one token, 32 heads) over float and int8 KV caches, at 512/2048/4096 positions,
// head_dim 64/128, MHA and GQA 32/8, 32/4 (bench/kv_attention_cases.h). Run:
//   build-bench/bench/bench_kv_attention --benchmark_counters_tabular=true
// (kv_attention_report prints the same comparison as ratios measured in one run, with KV memory.)
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>

#include "bench/kv_attention_cases.h"
#include "framework/threads.h"

namespace {

void BM_DecodeAttention(benchmark::State& state) {
  const auto& kind = ptq::bench::kv_cache_kinds().at(state.range(0));
  const ptq::bench::KVAttentionShape s{32, state.range(1), state.range(2), state.range(3)};
  torch::NoGradGuard no_grad;
  auto cache = ptq::bench::make_filled_kv_cache(kind, s);
  auto q = torch::randn({1, s.H, 1, s.D});
  auto allowed = torch::ones({1, 1, s.S}, torch::kBool);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  state.SetLabel(kind);
  for (auto _ : state) benchmark::DoNotOptimize(cache->attend(q, allowed, scale));
  state.counters["KV MiB"] = cache->memory_bytes() / 1048576.0;
  state.counters["GB/s KV"] = benchmark::Counter(static_cast<double>(cache->memory_bytes()),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::OneK::kIs1000);
}

void Shapes(benchmark::internal::Benchmark* b) {
  const auto& kinds = ptq::bench::kv_cache_kinds();
  for (const auto& s : ptq::bench::kv_attention_shapes())
    for (int64_t k = 0; k < static_cast<int64_t>(kinds.size()); ++k) b->Args({k, s.Hkv, s.D, s.S});
}

}  // namespace

BENCHMARK(BM_DecodeAttention)->Apply(Shapes)->ArgNames({"cache", "Hkv", "D", "S"})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  ptq::configure_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
