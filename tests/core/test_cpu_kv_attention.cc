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
#include <random>
#include <string>
#include <vector>

#include "framework/attention.h"
#include "framework/backend.h"
#include "framework/kv_checkpoint.h"
#include "framework/kv_quant.h"
#include "framework/tolerances.h"
#include "model_fixtures.h"
#include "network_helpers/eval/generation.h"
#include "network_helpers/eval/perplexity.h"

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
// A whole model: logits through two layers of attention + MLP; perplexity relative.
constexpr double kModelLogitsRel = 1e-5;
constexpr double kModelPerplexityRel = 1e-6;

// Largest differences seen (fp32), printed by the shape test: how far inside the tolerances the kernel is.
double worst_rel = 0, worst_nmse = 0;

struct Case {
  int64_t B, H, Hkv, D, S, T;
};

ptq::KVQuantParams params_for(bool dynamic, int64_t Hkv, int64_t D, const torch::Tensor& k, const torch::Tensor& v) {
  if (dynamic) return ptq::KVQuantParams::dynamic_per_token();
  // Calibrated on all but the last token, so a few late values clip (clamping is part of what is stored).
  auto past_k = k.narrow(2, 0, std::max<int64_t>(1, k.size(2) - 1));
  auto past_v = v.narrow(2, 0, std::max<int64_t>(1, v.size(2) - 1));
  return ptq::KVQuantParams::static_per_channel(ptq::kv_scale_from_absmax(past_k.abs().amax({0, 2})),
                                                ptq::kv_scale_from_absmax(past_v.abs().amax({0, 2})));
}

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
void compare(const Case& c, bool dynamic, torch::ScalarType dtype, const ptq::Backend& cpu, int64_t padding) {
  SCOPED_TRACE(::testing::Message() << (dynamic ? "dynamic" : "static") << " B " << c.B << " H " << c.H << " Hkv "
                                    << c.Hkv << " D " << c.D << " S " << c.S << " T " << c.T << " padding " << padding
                                    << " " << c10::toString(dtype));
  // Channels of different magnitude, as real keys have.
  auto k = (torch::randn({c.B, c.Hkv, c.S, c.D}) * torch::exp(torch::randn({1, c.Hkv, 1, c.D}))).to(dtype);
  auto v = torch::randn({c.B, c.Hkv, c.S, c.D}).to(dtype);
  auto q = torch::randn({c.B, c.H, c.T, c.D}).to(dtype);
  const ptq::KVQuantParams params = params_for(dynamic, c.Hkv, c.D, k, v);
  ptq::Int8KVCacheFormat reference_format(params);
  auto cpu_format = cpu.make_kv_cache_format(params);
  const ptq::KVCacheShape shape{c.B, c.Hkv, c.D, /*capacity=*/3, dtype, torch::kCPU};
  auto ref = reference_format.create(shape);
  auto got = cpu_format->create(shape);
  ASSERT_NE(got->name().find("-cpu"), std::string::npos) << got->name();
  int64_t pos = 0;
  for (int64_t chunk : {4, 1, 20, 1, 1000}) {  // grows the storage several times
    const int64_t t = std::min(chunk, c.S - c.T - pos);
    if (t <= 0) break;
    ref->append(k.narrow(2, pos, t), v.narrow(2, pos, t));
    got->append(k.narrow(2, pos, t), v.narrow(2, pos, t));
    pos += t;
  }
  ref->append(k.narrow(2, pos, c.T), v.narrow(2, pos, c.T));
  got->append(k.narrow(2, pos, c.T), v.narrow(2, pos, c.T));
  ASSERT_EQ(got->length(), c.S);
  // Same codes and scales: the dequantized entries are equal bit for bit (tol::kIntegerExact).
  EXPECT_TRUE(torch::equal(ref->keys(), got->keys()));
  EXPECT_TRUE(torch::equal(ref->values(), got->values()));
  EXPECT_EQ(ref->memory_bytes(), got->memory_bytes());

  auto valid = torch::ones({c.B, c.S}, torch::kBool);
  if (padding > 0) valid[c.B - 1].narrow(0, 0, std::min(padding, c.S)).fill_(false);  // left padding
  const auto mask = ptq::causal_attention_mask(valid, c.S - c.T, c.T);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  for (bool masked : {true, false}) {
    if (!masked && c.T > 1) continue;  // no mask is what a single query over the whole cache may pass
    const torch::Tensor m = masked ? mask : torch::Tensor();
    const torch::Tensor expected = ref->attend(q, m, scale);
    const torch::Tensor out = got->attend(q, m, scale);
    ASSERT_EQ(out.sizes(), expected.sizes());
    ASSERT_EQ(out.scalar_type(), dtype);
    const double peak = expected.abs().max().item<double>();
    const double rel = dtype == torch::kFloat32 ? kAttentionRel : kAttentionBf16Rel;
    EXPECT_TRUE(ptq::tol::all_close(expected, out, rel, rel * peak))
        << "max |diff| " << (out.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>()
        << ", max |ref| " << peak << (masked ? "" : " (no mask)");
    if (dtype == torch::kFloat32) {
      const double e = ptq::tol::nmse(expected, out);
      EXPECT_LE(e, kAttentionNmse);
      worst_nmse = std::max(worst_nmse, e);
      worst_rel = std::max(worst_rel, (out - expected).abs().max().item<double>() / peak);
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
  std::cout << "  int8 KV attention, cpu vs reference: max |diff| / max |ref| " << worst_rel << " (tolerance "
            << kAttentionRel << "), max nmse " << worst_nmse << " (tolerance " << kAttentionNmse << ")\n";
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

// |a - b| / |b| (Frobenius norms), in float64.
double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const auto bd = b.to(torch::kFloat64);
  return (a.to(torch::kFloat64) - bd).norm().item<double>() / bd.norm().item<double>();
}

class AbsMax : public ptq::KVObserver {
 public:
  void observe(const torch::Tensor& k, const torch::Tensor& v) override {
    auto km = k.abs().amax({0, 2}), vm = v.abs().amax({0, 2});
    k_ = k_.defined() ? torch::maximum(k_, km) : km;
    v_ = v_.defined() ? torch::maximum(v_, vm) : vm;
  }
  torch::Tensor k_, v_;
};

TEST_F(CpuKVAttentionTest, TinyModelPerplexityAndGreedyTokensMatchReferenceCache) {
  torch::manual_seed(44);
  torch::NoGradGuard no_grad;
  ptq::testing::TinyNet t = ptq::testing::tiny_net();
  auto slots = ptq::collect_kv_cache_slots(*t.net);
  ASSERT_FALSE(slots.empty());
  // Random ids (speed and equality do not depend on the text); the fixture's vocabulary has 300 entries.
  std::mt19937 rng(7);
  std::vector<int64_t> ids(400);
  for (auto& id : ids) id = static_cast<int64_t>(rng() % 300);
  // Static scales from one float pass over the first 64 tokens.
  std::vector<std::shared_ptr<AbsMax>> observers;
  for (auto& slot : slots) {
    observers.push_back(std::make_shared<AbsMax>());
    slot->add_observer(observers.back());
  }
  t.net->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 64)).unsqueeze(0));
  for (auto& slot : slots) slot->clear_observers();

  const std::vector<std::vector<int64_t>> prompts = {{ids.begin(), ids.begin() + 9}, {ids.begin() + 20, ids.begin() + 40}};
  auto [input_ids, attention_mask] = ptq::left_pad(prompts, 0);
  ptq::GenerationOptions gen;
  gen.max_new_tokens = 24;
  gen.stop_at_eos = false;
  ptq::PerplexityOptions ppl;
  ppl.window = 64;
  ppl.show_progress = false;
  const torch::Tensor window = torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 128)).unsqueeze(0);

  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic per-token" : "static per-channel");
    std::vector<ptq::KVQuantParams> params;
    for (size_t i = 0; i < slots.size(); ++i)
      params.push_back(dynamic ? ptq::KVQuantParams::dynamic_per_token()
                               : ptq::KVQuantParams::static_per_channel(ptq::kv_scale_from_absmax(observers[i]->k_),
                                                                        ptq::kv_scale_from_absmax(observers[i]->v_)));
    struct Run {
      torch::Tensor logits;
      double perplexity;
      std::vector<std::vector<int64_t>> tokens;
    };
    auto run = [&](bool use_cpu) {
      for (size_t i = 0; i < slots.size(); ++i)
        slots[i]->set_format(use_cpu ? cpu_->make_kv_cache_format(params[i])
                                     : std::make_shared<ptq::Int8KVCacheFormat>(params[i]));
      Run r;
      r.logits = t.net->forward(window);
      r.perplexity = ptq::evaluate_perplexity(*t.net, ids, ppl).perplexity;
      r.tokens = ptq::generate_tokens(*t.net, prompts, input_ids, attention_mask, gen, std::nullopt);
      return r;
    };
    const Run ref = run(false), cpu = run(true);
    EXPECT_LE(relative_difference(cpu.logits, ref.logits), kModelLogitsRel);
    EXPECT_NEAR(cpu.perplexity, ref.perplexity, kModelPerplexityRel * ref.perplexity);
    EXPECT_EQ(cpu.tokens, ref.tokens);
    std::cout << "  tiny model, " << (dynamic ? "dynamic" : "static") << " int8 KV: perplexity reference "
              << ref.perplexity << ", cpu " << cpu.perplexity << "; logits rel. diff "
              << relative_difference(cpu.logits, ref.logits) << "\n";
  }
  for (auto& slot : slots) slot->set_format(std::make_shared<ptq::FloatKVCacheFormat>());
}

}  // namespace
