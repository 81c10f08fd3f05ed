// The CPU backend (backends/cpu) against the reference backend on the same random inputs: W8A8 on oneDNN
// bit for bit, W8A16/W4A16 on AVX-512 within float32 rounding, over awkward shapes (M in {1, 2, 5, 16, 33,
// 128}; K and N not multiples of 64 where the group size allows; K not a multiple of the kernels' 128-column
// superblock), every group size 16/32/64/128 and per-channel, sym and asym. The tests go through the
// backend registry only, so they need no CPU-backend header, and they skip with the reason when the
// backend was not built (no oneDNN) or the CPU lacks what a kernel needs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/quantized_weight.h"
#include "framework/tolerances.h"
#include "kernel_test_util.h"

namespace {

using ptq::testing::expect_bit_exact;
using ptq::testing::expect_weight_only_close;
using ptq::testing::kRows;
using ptq::testing::linear_scheme;
using ptq::testing::spec;

class CpuKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ptq::register_builtin_backends();
    cpu_ = ptq::find_backend("cpu");
    reference_ = ptq::find_backend("reference");
    if (!cpu_) GTEST_SKIP() << "the cpu backend was not built (oneDNN not found or PTQ_BACKEND_CPU=OFF)";
  }
  // Skips the test (with the backend's reason) when the CPU backend declines a scheme it should cover
  // on capable hardware: only the missing CPU feature can make it decline these.
  bool skip_unless_supported(const ptq::LinearScheme& scheme) {
    const ptq::Support s = cpu_->supports(scheme);
    if (!s.ok) std::cout << "[ SKIPPED  ] " << scheme.name() << ": " << s.reason << "\n";
    return !s.ok;
  }
  std::shared_ptr<ptq::Backend> cpu_, reference_;
};

// ---- weight-only -------------------------------------------------------------------------------------

TEST_F(CpuKernelTest, WeightOnlyMatchesReference) {
  torch::manual_seed(3);
  struct Shape {
    int64_t group, K, N;
  };
  // K: not a multiple of 128 (padding of the last superblock) and, where the group allows, not of 64.
  const std::vector<Shape> shapes = {{ptq::kPerChannel, 200, 13}, {ptq::kPerChannel, 1000, 70},
                                     {ptq::kPerTensor, 200, 13},  {16, 208, 37},
                                     {32, 224, 13},               {64, 320, 70},
                                     {128, 384, 37}};
  int cases = 0;
  for (int bits : {4, 8}) {
    for (const Shape& sh : shapes) {
      for (bool sym : {true, false}) {
        if (sh.group == ptq::kPerTensor && !sym) continue;  // per-tensor asymmetric: not a scheme we make
        auto w = torch::randn({sh.N, sh.K}) * 0.05 + 0.01;  // off-centre, so zero points matter
        auto bias = torch::randn({sh.N});
        ptq::QuantizedLinearParams p;
        p.weight = ptq::quantize_weight(w, spec(bits, sh.group, sym));
        p.bias = bias;
        if (skip_unless_supported(p.scheme())) GTEST_SKIP() << "the CPU backend declines " << p.scheme().name();
        auto kernel = cpu_->make_linear_kernel(p, torch::kFloat32);
        auto ref = reference_->make_linear_kernel(p, torch::kFloat32);
        for (int64_t M : kRows) {
          SCOPED_TRACE(::testing::Message() << p.scheme().name() << " M " << M << " K " << sh.K << " N " << sh.N);
          auto x = torch::randn({M, sh.K});
          expect_weight_only_close(ref->forward(x), kernel->forward(x));
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 13 * 6);
}

TEST_F(CpuKernelTest, WeightOnlyBatchedInputsBf16AndNoBias) {
  torch::manual_seed(4);
  auto w = torch::randn({37, 256}) * 0.05;
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(w, spec(4, 32, false));
  if (skip_unless_supported(p.scheme())) GTEST_SKIP() << "the CPU backend declines " << p.scheme().name();
  auto kernel = cpu_->make_linear_kernel(p, torch::kFloat32);
  auto ref = reference_->make_linear_kernel(p, torch::kFloat32);
  for (int64_t T : {1, 7, 20}) {  // [B, T, K] with B * T on both sides of the small-M limit
    auto x = torch::randn({2, T, 256});
    expect_weight_only_close(ref->forward(x), kernel->forward(x));
    expect_weight_only_close(ref->forward(x.to(torch::kBFloat16)), kernel->forward(x.to(torch::kBFloat16)));
  }
  EXPECT_LT(kernel->weight_bytes(), w.numel() * 4 / 4);  // int4 + fp32 scale and int32 zero per 32: < 8 bits
}

// ---- W8A8 ----------------------------------------------------------------------------------------------

TEST_F(CpuKernelTest, W8A8MatchesReferenceBitForBit) {
  torch::manual_seed(5);
  struct Act {
    ptq::ActQuant act;
    bool symmetric;
  };
  const std::vector<Act> acts = {{ptq::ActQuant::kInt8PerTokenDynamic, true},
                                 {ptq::ActQuant::kInt8PerTokenDynamic, false},
                                 {ptq::ActQuant::kInt8PerTensorStatic, true},
                                 {ptq::ActQuant::kInt8PerTensorStatic, false}};
  const std::vector<std::pair<int64_t, bool>> weights = {
      {ptq::kPerChannel, true}, {ptq::kPerChannel, false}, {ptq::kPerTensor, true}};
  const std::vector<std::pair<int64_t, int64_t>> kn = {{200, 13}, {1000, 70}};
  int cases = 0;
  for (auto [K, N] : kn) {
    auto w = torch::randn({N, K}) * 0.1 + 0.02;
    auto bias = torch::randn({N});
    for (const auto& [group, wsym] : weights) {
      for (const Act& a : acts) {
        ptq::QuantizedLinearParams p;
        p.weight = ptq::quantize_weight(w, spec(8, group, wsym));
        p.bias = (cases % 2 == 0) ? bias : torch::Tensor();
        p.act = a.act;
        p.act_symmetric = a.symmetric;
        if (a.act == ptq::ActQuant::kInt8PerTensorStatic) {
          p.input_scale = torch::tensor(0.031f);
          if (!a.symmetric) p.input_zero_point = torch::tensor(-9, torch::kInt32);
        }
        if (skip_unless_supported(p.scheme())) GTEST_SKIP() << "the CPU backend declines " << p.scheme().name();
        auto kernel = cpu_->make_linear_kernel(p, torch::kFloat32);
        auto ref = reference_->make_linear_kernel(p, torch::kFloat32);
        for (int64_t M : kRows) {
          SCOPED_TRACE(::testing::Message() << p.scheme().name() << " weight " << ptq::granularity_name(group)
                                            << (wsym ? " sym" : " asym") << " M " << M << " K " << K << " N " << N);
          auto x = torch::randn({M, K}) + 0.3;  // skewed, so asymmetric activations matter
          x[0][0] = 6.0;                        // an outlier channel
          expect_bit_exact(ref->forward(x), kernel->forward(x));
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 3 * 4 * 6);
}

TEST_F(CpuKernelTest, W8A8BatchedAndReducedPrecisionInputs) {
  torch::manual_seed(6);
  auto w = torch::randn({70, 200}) * 0.1;
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(w, spec(8, ptq::kPerChannel, true));
  p.bias = torch::randn({70});
  p.act = ptq::ActQuant::kInt8PerTokenDynamic;
  if (skip_unless_supported(p.scheme())) GTEST_SKIP() << "the CPU backend declines " << p.scheme().name();
  auto kernel = cpu_->make_linear_kernel(p, torch::kFloat32);
  auto ref = reference_->make_linear_kernel(p, torch::kFloat32);
  auto x = torch::randn({3, 11, 200});
  EXPECT_TRUE(torch::equal(ref->forward(x), kernel->forward(x)));
  auto xb = x.to(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(ref->forward(xb), kernel->forward(xb)));
  EXPECT_EQ(kernel->forward(torch::randn({0, 200})).sizes(), (std::vector<int64_t>{0, 70}));
  // Which oneDNN implementation runs (brg:avx512_core_amx_int8 on AMX machines): recorded in the log.
  std::cout << "[   INFO   ] " << kernel->name() << "\n";
  EXPECT_NE(kernel->name().find("onednn"), std::string::npos);
}

// A GQA k/v projection of TinyLlama (K 2048, N 256): with the weight layout oneDNN picks for M = 128, M = 1
// ran on oneDNN's reference implementation (ref_int8, ~250x slower), which made W8A8 decode slower than
// float. The kernel warns when any M lands there; no M may.
TEST_F(CpuKernelTest, W8A8RunsEveryRowCountOnAFastImplementation) {
  torch::manual_seed(7);
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(torch::randn({256, 2048}) * 0.05, spec(8, ptq::kPerChannel, true));
  p.act = ptq::ActQuant::kInt8PerTokenDynamic;
  if (skip_unless_supported(p.scheme())) GTEST_SKIP() << "the CPU backend declines " << p.scheme().name();
  auto kernel = cpu_->make_linear_kernel(p, torch::kFloat32);
  auto ref = reference_->make_linear_kernel(p, torch::kFloat32);
  if (kernel->name().find("[ref") != std::string::npos) GTEST_SKIP() << "oneDNN has no fast int8 path here";
  ::testing::internal::CaptureStderr();
  for (int64_t M : kRows) {
    auto x = torch::randn({M, 2048});
    EXPECT_TRUE(torch::equal(ref->forward(x), kernel->forward(x))) << "M " << M;
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.find("reference implementation"), std::string::npos) << log;
}

// ---- what the backend declines, and the fallback ---------------------------------------------------------

TEST_F(CpuKernelTest, DeclinesWithReasonsAndFallsBackToReference) {
  const ptq::LinearScheme w3 = linear_scheme(3, 128);
  EXPECT_FALSE(cpu_->supports(w3).ok);
  EXPECT_NE(cpu_->supports(w3).reason.find("3-bit"), std::string::npos) << cpu_->supports(w3).reason;

  const ptq::LinearScheme g24 = linear_scheme(4, 24);
  EXPECT_FALSE(cpu_->supports(g24).ok);
  EXPECT_NE(cpu_->supports(g24).reason.find("multiple of 16"), std::string::npos) << cpu_->supports(g24).reason;

  EXPECT_FALSE(cpu_->supports(linear_scheme(8, 128, ptq::ActQuant::kInt8PerTokenDynamic)).ok);  // grouped W8A8

  EXPECT_FALSE(cpu_->supports_device(torch::Device("cuda:0")).ok);
  // The int8 KV cache is supported on AVX-512 CPUs: test_cpu_kv_attention.cc.

  auto choice = ptq::select_backend("cpu", w3, torch::kCPU);
  EXPECT_EQ(choice.backend->name(), "reference");
  EXPECT_NE(choice.fallback_reason.find("3-bit"), std::string::npos) << choice.fallback_reason;

  const ptq::LinearScheme w4 = linear_scheme(4, 128);
  if (!cpu_->supports(w4).ok) GTEST_SKIP() << cpu_->supports(w4).reason;
  auto automatic = ptq::select_backend("auto", w4, torch::kCPU);
  EXPECT_EQ(automatic.backend->name(), "cpu");
  EXPECT_TRUE(automatic.fallback_reason.empty()) << automatic.fallback_reason;
}

}  // namespace
