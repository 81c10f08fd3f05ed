// The issue-7 int8 KV-cache row: decode attention (one new token) of the CUDA backend's int8 cache
// (backends/cuda/kv_cache_cuda.h, the split-K kernel) against torch's fp16 attention over an fp16 cache, in
// the same run. Batch 1, 32 query heads, head_dim 128, KV heads 32 (MHA) and 8 (GQA), 2K / 8K / 16K cached
// positions (--positions). Prints a markdown table (times in us; speed-ups = fp16 SDPA time / int8 time and
// best fp16 time (the faster of SDPA and eager) / int8 time) and writes the rows as JSON (--json).
// Run (GPU machine): build-gpu/bench/cuda_kv_attention_report --json $OUT/kv.json
//
// The sides:
//   fp16 sdpa   at::scaled_dot_product_attention (torch >= 2; FlashAttention on Hopper at fp16 / D 128) with the
//               G query heads of a KV head as G query rows of that head: q [1, Hkv, G, D] over k, v [1, Hkv,
//               S, D] -- no repeat_kv copy, the same arithmetic as GQA.
//   fp16 eager  matmul, softmax in fp32, matmul (Hugging Face's eager attention), the same q layout.
//   int8 dyn / int8 static   KVCache::attend of the cuda backend's cache (per-token or per-channel scales):
//               everything attend() does per call (allocations, argument checks, the two kernels).
//   reference   the reference int8 cache's attend (dequantize to fp16, fp32 matmuls): what a CUDA model
//               ran before this kernel.
// Timing: bench/cuda_graph_timer.h (CUDA graph of 20 calls, median of 7 replays); every call reads the next
// of several cache copies, at least 4x the L2 in all, so the caches stream from HBM as in a real model.
// "GB/s" = bytes the int8 kernel must read (codes + scales) / its time.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <vector>

#include "bench/cuda_report_setup.h"
#include "bench/report_util.h"
#include "framework/backend.h"
#include "framework/kv_quant.h"
#include "framework/tolerances.h"

namespace {

torch::Tensor fp16_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, scale);
#else
  return torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-1, -2)) * scale, -1), v);
#endif
}

torch::Tensor fp16_eager(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  auto scores = torch::matmul(q, k.transpose(-1, -2)).mul_(scale);
  return torch::matmul(torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type()), v);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"int8 KV-cache decode attention (cuda backend) vs torch fp16 attention"};
  std::string json_path;
  std::vector<int64_t> positions = {2048, 8192, 16384};
  std::vector<int64_t> kv_heads = {32, 8};
  int64_t heads = 32, head_dim = 128;
  ptq::bench::GraphTiming o;
  bool no_reference = false;
  app.add_option("--json", json_path, "Write the rows as JSON to this file");
  app.add_option("--positions", positions, "Cached positions S");
  app.add_option("--kv-heads", kv_heads, "KV heads (each divides --heads)");
  app.add_option("--heads", heads, "Query heads");
  app.add_option("--head-dim", head_dim, "Head dimension");
  ptq::bench::add_timing_options(app, o);
  app.add_flag("--no-reference", no_reference, "Skip the reference int8 cache (slow at 16K)");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto setup = ptq::bench::cuda_report_setup();
    if (!setup) return 1;
    torch::NoGradGuard no_grad;
    const auto& [cuda, dev, prop, l2] = *setup;
    const int64_t D = head_dim, H = heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    std::cout << fmt::format("device: {} ({} SMs, L2 {} MiB), torch {}; batch 1, {} query heads, head_dim {}, one "
                             "new token; x = fp16 time / int8 time\n\n",
                             prop.name, prop.multiProcessorCount, l2 >> 20, TORCH_VERSION, H, D);
    std::cout << "| KV heads | positions | fp16 sdpa us | fp16 eager us | int8 dynamic us | x sdpa | x best fp16 | "
                 "int8 static us | x best fp16 | int8 dyn GB/s | reference int8 us | nmse int8 vs fp16 |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"
              << std::endl;
    nlohmann::json out = nlohmann::json::array();
    for (int64_t Hkv : kv_heads) {
      for (int64_t S : positions) {
        const int64_t G = H / Hkv;
        const int64_t fp16_bytes = 2 * Hkv * S * D * 2;
        const int copies = static_cast<int>(std::max<int64_t>(2, (4 * l2) / (fp16_bytes / 2) + 1));
        // The fp16 cache copies, and int8 caches holding the same keys/values.
        std::vector<torch::Tensor> ks, vs, qs;
        std::vector<std::unique_ptr<ptq::KVCache>> dyn, stat, ref;
        const ptq::KVCacheShape shape{1, Hkv, D, S, torch::kHalf, dev};
        for (int i = 0; i < copies; ++i) {
          ks.push_back((torch::randn({1, Hkv, S, D}, dev) * torch::exp(torch::randn({1, Hkv, 1, D}, dev))).to(torch::kHalf));
          vs.push_back(torch::randn({1, Hkv, S, D}, dev).to(torch::kHalf));
          qs.push_back(torch::randn({1, H, 1, D}, dev).to(torch::kHalf));
          const auto dyn_params = ptq::KVQuantParams::dynamic_per_token();
          const auto stat_params = ptq::KVQuantParams::static_per_channel(
              ptq::kv_scale_from_absmax(ks[i].abs().amax({0, 2})), ptq::kv_scale_from_absmax(vs[i].abs().amax({0, 2})));
          dyn.push_back(cuda->make_kv_cache_format(dyn_params)->create(shape));
          stat.push_back(cuda->make_kv_cache_format(stat_params)->create(shape));
          dyn.back()->append(ks[i], vs[i]);
          stat.back()->append(ks[i], vs[i]);
          if (!no_reference && i < 2) {  // the reference is slow; two copies keep its memory small
            ref.push_back(ptq::Int8KVCacheFormat(dyn_params).create(shape));
            ref.back()->append(ks[i], vs[i]);
          }
        }
        auto grouped = [&](int i) { return qs[i].view({1, Hkv, G, D}); };  // G query rows per KV head
        bool graphed = false;
        const double sdpa = ptq::bench::time_ms(
            [&](int i) { fp16_sdpa(grouped(i % copies), ks[i % copies], vs[i % copies], scale); }, o, &graphed);
        const double eager = ptq::bench::time_ms(
            [&](int i) { fp16_eager(grouped(i % copies), ks[i % copies], vs[i % copies], scale); }, o, &graphed);
        const double t_dyn = ptq::bench::time_ms(
            [&](int i) { dyn[i % copies]->attend(qs[i % copies], torch::Tensor(), scale); }, o, &graphed);
        const double t_stat = ptq::bench::time_ms(
            [&](int i) { stat[i % copies]->attend(qs[i % copies], torch::Tensor(), scale); }, o, &graphed);
        double t_ref = 0;
        if (!ref.empty())
          t_ref = ptq::bench::time_ms([&](int i) { ref[i % ref.size()]->attend(qs[i % ref.size()], torch::Tensor(), scale); },
                                      o, &graphed);
        // Sanity: int8 attention against fp16 attention of the unquantized cache (quantization error only).
        const auto expect = fp16_sdpa(grouped(0), ks[0], vs[0], scale).reshape({1, H, 1, D});
        const double err = ptq::tol::nmse(expect, dyn[0]->attend(qs[0], torch::Tensor(), scale));
        const double int8_bytes = static_cast<double>(2 * Hkv * S * D + 2 * Hkv * S * 4);
        const double gbs = int8_bytes / (t_dyn * 1e-3) / 1e9;
        const double best = std::min(sdpa, eager);  // the faster torch fp16 path is the baseline that counts
        std::cout << fmt::format("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.2f}x | {:.2f}x | {:.1f} | {:.2f}x | {:.0f} | {} | "
                                 "{:.1e} |",
                                 Hkv, S, sdpa * 1e3, eager * 1e3, t_dyn * 1e3, sdpa / t_dyn, best / t_dyn, t_stat * 1e3,
                                 best / t_stat, gbs, ref.empty() ? std::string("-") : fmt::format("{:.1f}", t_ref * 1e3),
                                 err)
                  << std::endl;
        out.push_back({{"kv_heads", Hkv}, {"heads", H}, {"head_dim", D}, {"positions", S}, {"copies", copies},
                       {"cuda_graph", graphed}, {"fp16_sdpa_us", sdpa * 1e3}, {"fp16_eager_us", eager * 1e3},
                       {"int8_dynamic_us", t_dyn * 1e3}, {"int8_static_us", t_stat * 1e3},
                       {"reference_int8_us", t_ref * 1e3}, {"speedup_dynamic", sdpa / t_dyn},
                       {"speedup_static", sdpa / t_stat},
                       {"speedup_dynamic_vs_best_fp16", best / t_dyn}, {"speedup_static_vs_best_fp16", best / t_stat}, {"int8_dynamic_gbs", gbs}, {"nmse_vs_fp16", err}});
      }
    }
    ptq::bench::write_json_rows(json_path, out);
  } catch (const std::exception& e) {
    std::cerr << "cuda_kv_attention_report: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
