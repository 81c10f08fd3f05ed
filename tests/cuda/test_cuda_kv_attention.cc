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
#include <iostream>
#include <string>
#include <vector>

#include "framework/algorithm.h"
#include "framework/backend.h"
#include "framework/kv_checkpoint.h"
#include "framework/kv_quant.h"
#include "framework/ptq_config.h"
#include "framework/tolerances.h"
#include "kv_attention_test_util.h"
#include "model_fixtures.h"
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
// A whole model: ptq::testing::kKVModelLogitsRel and kKVModelPerplexityRel (kv_attention_test_util.h).

ptq::testing::WorstAttentionDiff worst;  // fp32 cases, printed: how far inside the tolerances the kernel is

using ptq::testing::KVCase;

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

void compare(const KVCase& c, bool dynamic, torch::ScalarType dtype, const ptq::Backend& cuda, int64_t padding) {
  SCOPED_TRACE(ptq::testing::kv_case_trace(c, dynamic, dtype, padding));
  const torch::Device dev(torch::kCUDA, 0);
  const auto [k, v, q] = ptq::testing::random_kv_inputs(c, dtype, dev);
  const ptq::KVQuantParams params = ptq::testing::kv_params_for(dynamic, k, v);
  ptq::Int8KVCacheFormat reference_format(params);
  const ptq::KVCacheShape shape{c.B, c.Hkv, c.D, /*capacity=*/3, dtype, dev};
  ptq::KVCacheShape shape32 = shape;
  shape32.dtype = torch::kFloat32;
  auto ref = reference_format.create(shape);
  auto ref32 = reference_format.create(shape32);  // same codes (quantize_kv works in fp32), fp32 keys/values
  auto got = cuda.make_kv_cache_format(params)->create(shape);
  ASSERT_NE(got->name().find("-cuda"), std::string::npos) << got->name();
  ptq::testing::fill_kv_caches({ref.get(), ref32.get(), got.get()}, k, v, c.T);
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

  const auto mask = ptq::testing::left_padded_causal_mask(c, padding, dev);
  const double scale = ptq::testing::attention_scale(c);
  for (bool masked : {true, false}) {
    const torch::Tensor m = masked ? mask : torch::Tensor();
    const torch::Tensor expected = ref->attend(q, m, scale);
    const torch::Tensor out = got->attend(q, m, scale);
    ASSERT_EQ(out.sizes(), expected.sizes());
    ASSERT_EQ(out.scalar_type(), dtype);
    ASSERT_TRUE(out.isfinite().all().item<bool>()) << (masked ? "" : "(no mask)");
    if (dtype == torch::kFloat32) {
      ptq::testing::expect_fp32_attention_close(expected, out, kFp32AttentionRel, kFp32AttentionNmse, masked, &worst);
    } else if (!torch::equal(out, expected)) {  // equal: the dequantizing path (prefill), or S = 1
      const torch::Tensor exact = ref32->attend(q.to(torch::kFloat32), m, scale);
      ptq::testing::expect_attention_close(exact, out, ptq::tol::rel_tolerance(dtype), "fp32 ref", masked);
      EXPECT_LE(ptq::tol::nmse(exact, out), kHalfVsFp32Nmse) << (masked ? "" : "(no mask)");
      EXPECT_LE(ptq::tol::nmse(expected, out), ptq::tol::kKernelNmse)
          << "max |diff| to the same-dtype reference "
          << (out.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>() << ", max |ref| "
          << expected.abs().max().item<double>() << (masked ? "" : " (no mask)");
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
  std::cout << "  int8 KV attention, cuda vs reference (fp32): max |diff| / max |ref| " << worst.rel
            << " (tolerance " << kFp32AttentionRel << "), max nmse " << worst.nmse << " (tolerance "
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

  const std::vector<int64_t> ids = ptq::testing::random_model_ids();
  std::vector<std::shared_ptr<ptq::KVCacheFormat>> converted;
  for (auto& slot : slots) {
    converted.push_back(slot->format());
    slot->set_format(std::make_shared<ptq::FloatKVCacheFormat>());
  }
  // Static scales from one float pass over the first 64 tokens.
  const std::vector<ptq::KVQuantParams> static_params = ptq::testing::calibrate_static_kv_params(*net, slots, ids);

  for (bool dynamic : {true, false}) {
    SCOPED_TRACE(dynamic ? "dynamic per-token" : "static per-channel");
    auto run = [&](bool use_cuda) {
      for (size_t i = 0; i < slots.size(); ++i) {
        const ptq::KVQuantParams params = dynamic ? ptq::KVQuantParams::dynamic_per_token() : static_params[i];
        if (use_cuda)
          slots[i]->set_format(dynamic ? converted[i] : cuda_->make_kv_cache_format(params));
        else
          slots[i]->set_format(std::make_shared<ptq::Int8KVCacheFormat>(params));
      }
      return ptq::testing::run_kv_model(*net, ids);
    };
    const ptq::testing::KVModelRun ref = run(false), got = run(true);
    ptq::testing::expect_kv_model_match(ref, got, "small model (D 128)", "cuda", dynamic);
  }
}

}  // namespace
