// The CUDA backend's int8 KV cache (backends/cuda/kv_cache_cuda.h) against the reference int8 cache
// (framework/kv_quant.h: dequantize + grouped_query_attention) on the same GPU inputs: the stored codes and
// scales byte for byte, then attend() over awkward shapes -- head_dim 64 and 128; heads 32/32, 32/8, 12/4;
// S in {1, 7, 300, 2049} (one split, many splits, a last split of one position); decode (T = 1), short
// chunks (T = 7, still the kernel) and prefill from an empty cache (T = S, the reference path); both int8
// modes; left padding, fully masked rows and no mask; fp16 (all shapes), fp32 and bf16 (a subset). Then a
// small model (head_dim 128, GQA) converted by PTQ with backend "cuda": its caches are the CUDA ones, and
// logits, perplexity and greedy tokens equal those of the reference cache within the named tolerances.
// Registry only (no CUDA header): builds everywhere, skips with the reason without the backend or a GPU.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "framework/algorithm.h"
#include "framework/attention.h"
#include "framework/backend.h"
#include "framework/kv_checkpoint.h"
#include "framework/kv_quant.h"
#include "framework/ptq_config.h"
#include "framework/tolerances.h"
#include "model_fixtures.h"
#include "network_helpers/eval/generation.h"
#include "network_helpers/eval/perplexity.h"
#include "network_helpers/llama/llama_loader.h"
#include "network_helpers/llama/llama_network_helper.h"

namespace {

// Tolerances (kernel vs reference holding the same codes).
// fp32: the kernel differs only by float32 rounding (order of the sums over D and S, scales folded into q
// and p, the split-K rescaling by exp(m_i - M)); scores are O(10), so each weight moves by a few ulps
// relative (the CPU kernel, same data, measured 5e-6 of max |out|; S here reaches 2049). Elementwise within
// kFp32AttentionRel of max |reference| and nmse <= kFp32AttentionNmse (a wrong scale, layout or mask gives
// nmse of order 1).
constexpr double kFp32AttentionRel = 5e-5;
constexpr double kFp32AttentionNmse = 1e-9;
// fp16 / bf16: the reference rounds the dequantized cache to the compute dtype before its fp32 matmuls;
// the kernel keeps keys and values in fp32. Both round the output once. So the kernel is checked
// elementwise against the fp32 reference holding the same codes (keys/values not rounded): within the
// dtype's relative tolerance (tol::rel_tolerance) of max |reference|, nmse below kHalfVsFp32Nmse (one
// output rounding: bf16's half ulp 2^-9 squared is 4e-6, fp16's 2^-12 squared 6e-8); and against the
// same-dtype reference by nmse only (<= tol::kKernelNmse): that difference is the reference's own rounding
// of the keys, which a peaked softmax over large keys can turn into a few percent of one output element
// (seen on the H200: static, 32/8 heads, D 64, S 2049, T 7, fp16: 1.8e-2 of max |out|, while the nmse
// checks passed). A CPU simulation of these roundings (32/8 heads, D 128, S 300 and 2049) gave, bf16:
// nmse 1.0e-4 against the bf16 reference and 2.8e-6 against fp32; fp16: 1.1e-6 and 4.6e-8.
constexpr double kHalfVsFp32Nmse = 1e-5;
// A whole model: logits through two layers; perplexity relative.
constexpr double kModelLogitsRel = 1e-5;
constexpr double kModelPerplexityRel = 1e-6;

double worst_rel = 0, worst_nmse = 0;  // fp32 cases, printed: how far inside the tolerances the kernel is

struct Case {
  int64_t B, H, Hkv, D, S, T;
};

ptq::KVQuantParams params_for(bool dynamic, const torch::Tensor& k, const torch::Tensor& v) {
  if (dynamic) return ptq::KVQuantParams::dynamic_per_token();
  // Calibrated on all but the last token, so a few late values clip (clamping is part of what is stored).
  auto past_k = k.narrow(2, 0, std::max<int64_t>(1, k.size(2) - 1));
  auto past_v = v.narrow(2, 0, std::max<int64_t>(1, v.size(2) - 1));
  return ptq::KVQuantParams::static_per_channel(ptq::kv_scale_from_absmax(past_k.abs().amax({0, 2})),
                                                ptq::kv_scale_from_absmax(past_v.abs().amax({0, 2})));
}

class CudaKVAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ptq::register_builtin_backends();
    cuda_ = ptq::find_backend("cuda");
    if (!cuda_) GTEST_SKIP() << "this build has no CUDA backend (LibTorch without CUDA, or PTQ_WITH_CUDA_BACKEND=OFF)";
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
    const ptq::Support s = cuda_->supports_kv(ptq::KVQuantParams::dynamic_per_token());
    if (!s.ok) GTEST_SKIP() << "the cuda backend declines the int8 KV cache: " << s.reason;
  }
  static torch::Device gpu() { return torch::Device(torch::kCUDA, 0); }
  std::shared_ptr<ptq::Backend> cuda_;
};

// Appends the same keys/values to every cache: S - T old positions in uneven chunks (growing the storage
// several times), then the T new ones.
void fill(const std::vector<ptq::KVCache*>& caches, const torch::Tensor& k, const torch::Tensor& v, int64_t T) {
  const int64_t S = k.size(2);
  int64_t pos = 0;
  const std::vector<int64_t> chunks = {4, 1, 20, 1, 1000};
  for (size_t i = 0; pos < S - T; ++i) {
    const int64_t t = std::min(chunks[i % chunks.size()], S - T - pos);
    for (auto* c : caches) c->append(k.narrow(2, pos, t), v.narrow(2, pos, t));
    pos += t;
  }
  for (auto* c : caches) c->append(k.narrow(2, pos, T), v.narrow(2, pos, T));
}

void compare(const Case& c, bool dynamic, torch::ScalarType dtype, const ptq::Backend& cuda, int64_t padding) {
  SCOPED_TRACE(::testing::Message() << (dynamic ? "dynamic" : "static") << " B " << c.B << " H " << c.H << " Hkv "
                                    << c.Hkv << " D " << c.D << " S " << c.S << " T " << c.T << " padding " << padding
                                    << " " << c10::toString(dtype));
  const torch::Device dev(torch::kCUDA, 0);
  // Channels of different magnitude, as real keys have.
  auto k = (torch::randn({c.B, c.Hkv, c.S, c.D}, dev) * torch::exp(torch::randn({1, c.Hkv, 1, c.D}, dev))).to(dtype);
  auto v = torch::randn({c.B, c.Hkv, c.S, c.D}, dev).to(dtype);
  auto q = torch::randn({c.B, c.H, c.T, c.D}, dev).to(dtype);
  const ptq::KVQuantParams params = params_for(dynamic, k, v);
  ptq::Int8KVCacheFormat reference_format(params);
  const ptq::KVCacheShape shape{c.B, c.Hkv, c.D, /*capacity=*/3, dtype, dev};
  ptq::KVCacheShape shape32 = shape;
  shape32.dtype = torch::kFloat32;
  auto ref = reference_format.create(shape);
  auto ref32 = reference_format.create(shape32);  // same codes (quantize_kv works in fp32), fp32 keys/values
  auto got = cuda.make_kv_cache_format(params)->create(shape);
  ASSERT_NE(got->name().find("-cuda"), std::string::npos) << got->name();
  fill({ref.get(), ref32.get(), got.get()}, k, v, c.T);
  ASSERT_EQ(got->length(), c.S);
  // Same storage byte for byte (tol::kIntegerExact): the CUDA cache is an Int8KVCache with a kernel added.
  const auto* r8 = dynamic_cast<const ptq::Int8KVCache*>(ref.get());
  const auto* g8 = dynamic_cast<const ptq::Int8KVCache*>(got.get());
  ASSERT_TRUE(r8 && g8);
  EXPECT_TRUE(torch::equal(r8->key_codes(), g8->key_codes()));
  EXPECT_TRUE(torch::equal(r8->value_codes(), g8->value_codes()));
  EXPECT_TRUE(torch::equal(r8->key_scales(), g8->key_scales()));
  EXPECT_TRUE(torch::equal(r8->value_scales(), g8->value_scales()));
  EXPECT_EQ(ref->memory_bytes(), got->memory_bytes());

  auto valid = torch::ones({c.B, c.S}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  if (padding > 0) valid[c.B - 1].narrow(0, 0, std::min(padding, c.S)).fill_(false);  // left padding
  const auto mask = ptq::causal_attention_mask(valid, c.S - c.T, c.T);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  for (bool masked : {true, false}) {
    const torch::Tensor m = masked ? mask : torch::Tensor();
    const torch::Tensor expected = ref->attend(q, m, scale);
    const torch::Tensor out = got->attend(q, m, scale);
    ASSERT_EQ(out.sizes(), expected.sizes());
    ASSERT_EQ(out.scalar_type(), dtype);
    ASSERT_TRUE(out.isfinite().all().item<bool>()) << (masked ? "" : "(no mask)");
    const double peak = expected.abs().max().item<double>();
    const double max_diff = (out.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>();
    if (dtype == torch::kFloat32) {
      EXPECT_TRUE(ptq::tol::all_close(expected, out, kFp32AttentionRel, kFp32AttentionRel * peak))
          << "max |diff| " << max_diff << ", max |ref| " << peak << (masked ? "" : " (no mask)");
      const double e = ptq::tol::nmse(expected, out);
      EXPECT_LE(e, kFp32AttentionNmse) << (masked ? "" : "(no mask)");
      worst_nmse = std::max(worst_nmse, e);
      worst_rel = std::max(worst_rel, max_diff / peak);
    } else if (!torch::equal(out, expected)) {  // equal: the dequantizing path (prefill), or S = 1
      const double rel = ptq::tol::rel_tolerance(dtype);
      const torch::Tensor exact = ref32->attend(q.to(torch::kFloat32), m, scale);
      const double exact_peak = exact.abs().max().item<double>();
      EXPECT_TRUE(ptq::tol::all_close(exact, out, rel, rel * exact_peak))
          << "max |diff| " << (out.to(torch::kFloat64) - exact.to(torch::kFloat64)).abs().max().item<double>()
          << ", max |fp32 ref| " << exact_peak << (masked ? "" : " (no mask)");
      EXPECT_LE(ptq::tol::nmse(exact, out), kHalfVsFp32Nmse) << (masked ? "" : "(no mask)");
      EXPECT_LE(ptq::tol::nmse(expected, out), ptq::tol::kKernelNmse)
          << "max |diff| to the same-dtype reference " << max_diff << ", max |ref| " << peak
          << (masked ? "" : " (no mask)");
    }
  }
}

TEST_F(CudaKVAttentionTest, MatchesReferenceInt8CacheOnAwkwardShapes) {
  torch::manual_seed(51);
  int cases = 0;
  for (int64_t D : {64, 128}) {
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{32, 32}, {32, 8}, {12, 4}}) {
      for (int64_t S : {1, 7, 300, 2049}) {
        std::vector<int64_t> tokens = {1};  // decode; a short chunk (the kernel); prefill from empty (T = S)
        if (S >= 7) tokens.push_back(7);
        if (S > 7) tokens.push_back(S);
        for (int64_t T : tokens) {
          for (bool dynamic : {false, true}) {
            compare({2, H, Hkv, D, S, T}, dynamic, torch::kHalf, *cuda_, /*padding=*/S > 2 ? 3 : 0);
            ++cases;
          }
        }
      }
    }
  }
  // S = 1: T = 1; S = 7: T = 1, 7; S = 300 and 2049: T = 1, 7, S.
  EXPECT_EQ(cases, 2 * 3 * (1 + 2 + 3 + 3) * 2);
}

TEST_F(CudaKVAttentionTest, Fp32AndBf16Queries) {
  torch::manual_seed(52);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (bool dynamic : {false, true}) {
      for (int64_t S : {7, 300, 2049}) {
        compare({2, 32, 8, 128, S, 1}, dynamic, dtype, *cuda_, 3);
        compare({1, 12, 4, 64, S, 5}, dynamic, dtype, *cuda_, 0);
        compare({2, 32, 32, 64, S, 1}, dynamic, dtype, *cuda_, 2);
      }
    }
  }
  std::cout << "  int8 KV attention, cuda vs reference (fp32): max |diff| / max |ref| " << worst_rel
            << " (tolerance " << kFp32AttentionRel << "), max nmse " << worst_nmse << " (tolerance "
            << kFp32AttentionNmse << ")\n";
}

// Prefill from an empty cache with left padding: the padded queries of the last sequence allow no key at
// all, and both attends then average every position (the reference's finite fill). T = 7 with 8 query
// heads per KV head is 56 rows: still the kernel.
TEST_F(CudaKVAttentionTest, FullyMaskedRowsAverageEveryPosition) {
  torch::manual_seed(53);
  for (bool dynamic : {false, true}) {
    for (auto dtype : {torch::kFloat32, torch::kHalf}) {
      compare({2, 16, 2, 128, 7, 7}, dynamic, dtype, *cuda_, /*padding=*/3);
      compare({2, 4, 4, 64, 40, 40}, dynamic, dtype, *cuda_, /*padding=*/5);
    }
  }
}

TEST_F(CudaKVAttentionTest, FormatLookupAndFallback) {
  for (const auto& params : {ptq::KVQuantParams::dynamic_per_token(),
                             ptq::KVQuantParams::static_per_channel(torch::tensor(0.05f), torch::tensor(0.02f))}) {
    auto format = ptq::make_int8_kv_cache_format("cuda", params);
    // Still an Int8KVCacheFormat: checkpoints read its scheme and static scales.
    ASSERT_NE(dynamic_cast<ptq::Int8KVCacheFormat*>(format.get()), nullptr);
    EXPECT_EQ(format->name(), params.to_string());
    EXPECT_EQ(format->create({1, 2, 64, 4, torch::kHalf, gpu()})->name(), params.to_string() + "-cuda");
    // Another device: the reference cache (logged once).
    EXPECT_EQ(format->create({1, 2, 64, 4, torch::kFloat32, torch::kCPU})->name(), params.to_string());
    ptq::force_reference_backend(true);
    auto forced = ptq::make_int8_kv_cache_format("cuda", params);
    ptq::force_reference_backend(false);
    EXPECT_EQ(forced->create({1, 2, 64, 4, torch::kHalf, gpu()})->name(), params.to_string());
  }
  // A head_dim without a kernel still attends correctly (the dequantizing path).
  torch::manual_seed(54);
  compare({1, 4, 2, 72, 33, 1}, true, torch::kFloat32, *cuda_, 0);
}

// ---- a whole model, converted by PTQ -----------------------------------------------------------------

class AbsMax : public ptq::KVObserver {
 public:
  void observe(const torch::Tensor& k, const torch::Tensor& v) override {
    auto km = k.abs().amax({0, 2}), vm = v.abs().amax({0, 2});
    k_ = k_.defined() ? torch::maximum(k_, km) : km;
    v_ = v_.defined() ? torch::maximum(v_, vm) : vm;
  }
  torch::Tensor k_, v_;
};

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const auto bd = b.to(torch::kFloat64);
  return (a.to(torch::kFloat64) - bd).norm().item<double>() / bd.norm().item<double>();
}

TEST_F(CudaKVAttentionTest, SmallModelConvertsToCudaCacheAndMatchesReference) {
  torch::manual_seed(55);
  torch::NoGradGuard no_grad;
  // The tiny fixture widened to head_dim 128 (hidden 512, 4 heads, 2 KV heads: G = 2), fp32 on the GPU.
  const auto dir = ptq::testing::tiny_model_dir("tiny_kv_d128", {{"hidden_size", 512}});
  ptq::LoadOptions load;
  load.device = gpu();
  auto net = ptq::load_llama(dir, load);
  ptq::LlamaNetworkHelper helper(dir);
  // convert() with backend "cuda" and a dynamic int8 KV cache: every slot's caches are the CUDA ones.
  ptq::register_builtin_algorithms();
  auto algorithm = ptq::create_algorithm(
      "ptq", ptq::PTQConfig::from_json({{"kvcache_quant_dtype", "int8"}, {"kvcache_quant_granularity", "per_token"},
                                        {"backend", "cuda"}},
                                       "test config"));
  algorithm->apply(*net, helper);
  algorithm->convert(*net);
  auto slots = ptq::collect_kv_cache_slots(*net);
  ASSERT_FALSE(slots.empty());
  for (auto& slot : slots)
    EXPECT_EQ(slot->create({1, 2, 128, 4, torch::kFloat32, gpu()})->name(), "int8-dynamic-per-token-cuda");

  std::mt19937 rng(7);
  std::vector<int64_t> ids(400);
  for (auto& id : ids) id = static_cast<int64_t>(rng() % 300);  // the fixture's vocabulary has 300 entries
  std::vector<std::shared_ptr<AbsMax>> observers;  // static scales from one float pass over 64 tokens
  std::vector<std::shared_ptr<ptq::KVCacheFormat>> converted;
  for (auto& slot : slots) {
    converted.push_back(slot->format());
    slot->set_format(std::make_shared<ptq::FloatKVCacheFormat>());
    observers.push_back(std::make_shared<AbsMax>());
    slot->add_observer(observers.back());
  }
  net->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 64)).unsqueeze(0));
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

  for (bool dynamic : {true, false}) {
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
    auto run = [&](bool use_cuda) {
      for (size_t i = 0; i < slots.size(); ++i) {
        if (use_cuda)
          slots[i]->set_format(dynamic ? converted[i] : cuda_->make_kv_cache_format(params[i]));
        else
          slots[i]->set_format(std::make_shared<ptq::Int8KVCacheFormat>(params[i]));
      }
      Run r;
      r.logits = net->forward(window);
      r.perplexity = ptq::evaluate_perplexity(*net, ids, ppl).perplexity;
      r.tokens = ptq::generate_tokens(*net, prompts, input_ids, attention_mask, gen, std::nullopt);
      return r;
    };
    const Run ref = run(false), got = run(true);
    EXPECT_LE(relative_difference(got.logits, ref.logits), kModelLogitsRel);
    EXPECT_NEAR(got.perplexity, ref.perplexity, kModelPerplexityRel * ref.perplexity);
    EXPECT_EQ(got.tokens, ref.tokens);
    std::cout << "  small model (D 128), " << (dynamic ? "dynamic" : "static") << " int8 KV: perplexity reference "
              << ref.perplexity << ", cuda " << got.perplexity << "; logits rel. diff "
              << relative_difference(got.logits, ref.logits) << "\n";
  }
}

}  // namespace
