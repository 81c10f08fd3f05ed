// The CPU backend's int8 KV-cache attention (backends/cpu/kv_cache_cpu.h) against the reference int8
// cache (framework/kv_quant.h: dequantize + grouped_query_attention) holding the same codes: awkward shapes
// (head_dim 64, 128 and 72, MHA and GQA, S in {1, 7, 300}, T in {1, 5}, left padding, fully masked query
// rows), both int8 modes, fp32 and bf16; then a tiny model whose logits, perplexity and greedy tokens must
// not change when its caches switch from the reference to the CPU kernel. Like test_cpu_kernels.cc the
// tests use the backend registry only and skip, with the reason, when the backend is absent or declines.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/kv_checkpoint.h"
#include "framework/kv_quant.h"
#include "framework/tolerances.h"
#include "kv_attention_test_util.h"
#include "model_fixtures.h"

namespace {

// Same codes and scales, so the two attends differ only by float32 rounding: the order of the sums over
// D and S, the scales folded into q and p rather than into k and v, and a polynomial exp (~1 ulp). Each
// score carries a relative error of a few ulps times its magnitude (|score| <= ~10 here), which exp turns
// into the same relative error of a weight; measured (seed 41, 120 cases): max elementwise difference
// 5e-6 of max |out|, nmse 4e-12.
// Elementwise within kAttentionRel of max |reference| (outputs near zero have no meaningful relative
// error), and the normalized MSE far below what a wrong scale or layout gives (order 1).
constexpr double kAttentionRel = 2e-5;
constexpr double kAttentionNmse = 1e-9;
// bf16 inputs and output: the kernel and the reference both compute in fp32 and round the result once to
// bf16, so they differ by at most one bf16 rounding of nearly equal fp32 values.
constexpr double kAttentionBf16Rel = ptq::tol::kBf16Rel;
// A whole model: ptq::testing::kKVModelLogitsRel and kKVModelPerplexityRel (kv_attention_test_util.h).

// Largest differences seen (fp32), printed by the shape test: how far inside the tolerances the kernel is.
ptq::testing::WorstAttentionDiff worst;

using ptq::testing::KVCase;

class CpuKVAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ptq::register_builtin_backends();
    cpu_ = ptq::find_backend("cpu");
    if (!cpu_) GTEST_SKIP() << "the cpu backend was not built (oneDNN not found or PTQ_BACKEND_CPU=OFF)";
    const ptq::Support s = cpu_->supports_kv(ptq::KVQuantParams::dynamic_per_token());
    if (!s.ok) GTEST_SKIP() << "the cpu backend declines the int8 KV cache: " << s.reason;
  }
  std::shared_ptr<ptq::Backend> cpu_;
};

// Fills a reference and a CPU cache with the same keys/values (S - T old positions in uneven chunks, then T
// new ones), checks they store the same codes, and compares attend() for the T new queries.
void compare(const KVCase& c, bool dynamic, torch::ScalarType dtype, const ptq::Backend& cpu, int64_t padding) {
  SCOPED_TRACE(ptq::testing::kv_case_trace(c, dynamic, dtype, padding));
  const auto [k, v, q] = ptq::testing::random_kv_inputs(c, dtype, torch::kCPU);
  const ptq::KVQuantParams params = ptq::testing::kv_params_for(dynamic, k, v);
  ptq::Int8KVCacheFormat reference_format(params);
  auto cpu_format = cpu.make_kv_cache_format(params);
  const ptq::KVCacheShape shape{c.B, c.Hkv, c.D, /*capacity=*/3, dtype, torch::kCPU};
  auto ref = reference_format.create(shape);
  auto got = cpu_format->create(shape);
  ASSERT_NE(got->name().find("-cpu"), std::string::npos) << got->name();
  ptq::testing::fill_kv_caches({ref.get(), got.get()}, k, v, c.T);
  ASSERT_EQ(got->length(), c.S);
  // Same codes and scales: the dequantized entries are equal bit for bit (tol::kIntegerExact).
  EXPECT_TRUE(torch::equal(ref->keys(), got->keys()));
  EXPECT_TRUE(torch::equal(ref->values(), got->values()));
  EXPECT_EQ(ref->memory_bytes(), got->memory_bytes());

  const auto mask = ptq::testing::left_padded_causal_mask(c, padding, torch::kCPU);
  const double scale = ptq::testing::attention_scale(c);
  for (bool masked : {true, false}) {
    if (!masked && c.T > 1) continue;  // no mask is what a single query over the whole cache may pass
    const torch::Tensor m = masked ? mask : torch::Tensor();
    const torch::Tensor expected = ref->attend(q, m, scale);
    const torch::Tensor out = got->attend(q, m, scale);
    ASSERT_EQ(out.sizes(), expected.sizes());
    ASSERT_EQ(out.scalar_type(), dtype);
    if (dtype == torch::kFloat32) {
      ptq::testing::expect_fp32_attention_close(expected, out, kAttentionRel, kAttentionNmse, masked, &worst);
    } else {
      ptq::testing::expect_attention_close(expected, out, kAttentionBf16Rel, "ref", masked);
    }
  }
}

TEST_F(CpuKVAttentionTest, MatchesReferenceInt8CacheOnAwkwardShapes) {
  torch::manual_seed(41);
  int cases = 0;
  for (int64_t D : {64, 128, 72}) {
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {12, 4}, {6, 1}}) {
      for (int64_t S : {1, 7, 300}) {
        for (int64_t T : {1, 5}) {
          if (T > S) continue;
          for (bool dynamic : {false, true}) {
            compare({2, H, Hkv, D, S, T}, dynamic, torch::kFloat32, *cpu_, /*padding=*/S > 2 ? 3 : 0);
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 4 * 5 * 2);
  std::cout << "  int8 KV attention, cpu vs reference: max |diff| / max |ref| " << worst.rel << " (tolerance "
            << kAttentionRel << "), max nmse " << worst.nmse << " (tolerance " << kAttentionNmse << ")\n";
}

// Prefill from an empty cache with left padding: the padded queries of the last sequence allow no key at
// all, and both attends then average every position (the reference's finite fill).
TEST_F(CpuKVAttentionTest, PrefillFromEmptyWithFullyMaskedRows) {
  torch::manual_seed(42);
  for (bool dynamic : {false, true}) {
    compare({2, 8, 2, 64, 7, 7}, dynamic, torch::kFloat32, *cpu_, /*padding=*/3);
    compare({1, 4, 4, 16, 40, 40}, dynamic, torch::kFloat32, *cpu_, /*padding=*/0);
  }
}

TEST_F(CpuKVAttentionTest, Bf16InputsAndOutputs) {
  torch::manual_seed(43);
  for (bool dynamic : {false, true}) {
    compare({1, 8, 2, 128, 300, 1}, dynamic, torch::kBFloat16, *cpu_, 0);
    compare({1, 8, 2, 64, 33, 5}, dynamic, torch::kBFloat16, *cpu_, 0);
  }
}

TEST_F(CpuKVAttentionTest, FormatLookupAndFallback) {
  for (const auto& params : {ptq::KVQuantParams::dynamic_per_token(),
                             ptq::KVQuantParams::static_per_channel(torch::tensor(0.05f), torch::tensor(0.02f))}) {
    EXPECT_TRUE(cpu_->supports_kv(params).ok);
    for (const char* requested : {"cpu", "auto"}) {
      auto format = ptq::make_int8_kv_cache_format(requested, params);
      // Still an Int8KVCacheFormat: checkpoints read its scheme and static scales.
      auto* int8 = dynamic_cast<ptq::Int8KVCacheFormat*>(format.get());
      ASSERT_NE(int8, nullptr) << requested;
      EXPECT_EQ(format->name(), params.to_string());
      auto cache = format->create({1, 2, 16, 4, torch::kFloat32, torch::kCPU});
      EXPECT_EQ(cache->name(), params.to_string() + "-cpu") << requested;
    }
    auto reference = ptq::make_int8_kv_cache_format("reference", params);
    EXPECT_EQ(reference->create({1, 2, 16, 4, torch::kFloat32, torch::kCPU})->name(), params.to_string());
    ptq::force_reference_backend(true);
    auto forced = ptq::make_int8_kv_cache_format("cpu", params);
    ptq::force_reference_backend(false);
    EXPECT_EQ(forced->create({1, 2, 16, 4, torch::kFloat32, torch::kCPU})->name(), params.to_string());
    if (torch::cuda::is_available()) {  // another device: the reference cache, with a logged reason
      auto format = cpu_->make_kv_cache_format(params);
      auto cache = format->create({1, 2, 16, 4, torch::kFloat32, torch::Device(torch::kCUDA)});
      EXPECT_EQ(cache->name(), params.to_string());
    }
  }
}

// ---- a whole model ---------------------------------------------------------------------------------------

TEST_F(CpuKVAttentionTest, TinyModelPerplexityAndGreedyTokensMatchReferenceCache) {
  torch::manual_seed(44);
  torch::NoGradGuard no_grad;
  ptq::testing::TinyNet t = ptq::testing::tiny_net();
  auto slots = ptq::collect_kv_cache_slots(*t.net);
  ASSERT_FALSE(slots.empty());
  const std::vector<int64_t> ids = ptq::testing::random_model_ids();
  // Static scales from one float pass over the first 64 tokens.
  const std::vector<ptq::KVQuantParams> static_params = ptq::testing::calibrate_static_kv_params(*t.net, slots, ids);

  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic per-token" : "static per-channel");
    auto run = [&](bool use_cpu) {
      for (size_t i = 0; i < slots.size(); ++i) {
        const ptq::KVQuantParams params = dynamic ? ptq::KVQuantParams::dynamic_per_token() : static_params[i];
        slots[i]->set_format(use_cpu ? cpu_->make_kv_cache_format(params)
                                     : std::make_shared<ptq::Int8KVCacheFormat>(params));
      }
      return ptq::testing::run_kv_model(*t.net, ids);
    };
    const ptq::testing::KVModelRun ref = run(false), cpu = run(true);
    ptq::testing::expect_kv_model_match(ref, cpu, "tiny model", "cpu", dynamic);
  }
  for (auto& slot : slots) slot->set_format(std::make_shared<ptq::FloatKVCacheFormat>());
}

}  // namespace
