// The reference backend: W8A8 kernels against a direct int64 computation of the integer products (bit
// for bit) and against float linear (within the propagated quantization steps), weight-only kernels
// against dequantize + linear, the fake-quant kernel, the backend registry and selection policy, and the
// int8 KV cache (static per-channel and dynamic per-token) against float keys, values and attention.
// Shapes are awkward on purpose: M in {1, 2, 5, 16, 33}, K and N not multiples of 64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "backends/reference/reference_backend.h"
#include "backends/reference/reference_kernels.h"
#include "framework/activation_quant.h"
#include "framework/attention.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "test_util.h"
#include "framework/kv_checkpoint.h"
#include "framework/kv_quant.h"
#include "framework/linear.h"
#include "framework/quantized_weight.h"
#include "framework/tolerances.h"
#include "kernel_test_util.h"

namespace {

using ptq::testing::error_of;
using ptq::testing::spec;

// Sets the force-reference switch for one scope and restores it (PTQ_FORCE_REFERENCE may be set).
class ForceReference {
 public:
  explicit ForceReference(bool force) : before_(ptq::reference_backend_forced()) {
    ptq::force_reference_backend(force);
  }
  ~ForceReference() { ptq::force_reference_backend(before_); }

 private:
  bool before_;
};

class ReferenceBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ptq::register_builtin_backends(); }
  std::shared_ptr<ptq::Backend> reference() { return ptq::find_backend("reference"); }
};

// ---- W8A8 --------------------------------------------------------------------------------------------

struct ActCase {
  ptq::ActQuant act;
  bool symmetric;
};

// The W8A8 formula computed independently: int64 products summed elementwise (no matmul), then the
// documented float32 epilogue acc * sx * sw + bias.
torch::Tensor direct_w8a8(const torch::Tensor& x, const ptq::QuantizedLinearParams& p) {
  const int64_t K = p.weight.in_features(), N = p.weight.out_features();
  auto x2 = x.reshape({-1, K});
  auto qa = p.act == ptq::ActQuant::kInt8PerTokenDynamic
                ? ptq::quantize_per_token_int8(x2, p.act_symmetric)
                : ptq::quantize_per_tensor_int8(x2, p.input_scale, p.input_zero_point);
  auto xi = qa.data.to(torch::kInt64);
  if (qa.zero_point.defined()) xi = xi - qa.zero_point.to(torch::kInt64);
  auto wi = p.weight.unpacked_int8().to(torch::kInt64);
  if (p.weight.zero_point.defined()) wi = wi - p.weight.zero_point.to(torch::kInt64);
  auto acc = (xi.unsqueeze(1) * wi.unsqueeze(0)).sum(-1);  // int64 [M, N]
  EXPECT_LT(acc.abs().max().item<int64_t>(), int64_t{1} << 31);
  auto sx = qa.scale.numel() == 1 ? qa.scale.reshape({1, 1}) : qa.scale.reshape({-1, 1});
  auto y = acc.to(torch::kFloat32) * sx * p.weight.scale.reshape({1, N});
  if (p.bias.defined()) y = y + p.bias;
  auto shape = x.sizes().vec();
  shape.back() = N;
  return y.to(x.scalar_type()).reshape(shape);
}

TEST_F(ReferenceBackendTest, W8A8EqualsIntegerProductsExactlyAndFloatWithinOneStep) {
  torch::manual_seed(11);
  const std::vector<ActCase> acts = {{ptq::ActQuant::kInt8PerTokenDynamic, true},
                                     {ptq::ActQuant::kInt8PerTokenDynamic, false},
                                     {ptq::ActQuant::kInt8PerTensorStatic, true},
                                     {ptq::ActQuant::kInt8PerTensorStatic, false}};
  const std::vector<std::pair<int64_t, bool>> weights = {
      {ptq::kPerChannel, true}, {ptq::kPerChannel, false}, {ptq::kPerTensor, true}};
  const std::vector<std::pair<int64_t, int64_t>> kn = {{40, 24}, {96, 72}, {200, 13}};
  int cases = 0;
  for (auto [K, N] : kn) {
    auto w = torch::randn({N, K}) * 0.1;
    auto bias = torch::randn({N});
    for (int64_t M : {1, 2, 5, 16, 33}) {
      auto x = torch::randn({M, K}) + 0.3;  // skewed, so asymmetric activations matter
      x[0][0] = 6.0;                        // an outlier channel
      for (const auto& [group, wsym] : weights) {
        for (const ActCase& a : acts) {
          for (bool with_bias : {true, false}) {
            SCOPED_TRACE(::testing::Message() << "M " << M << " K " << K << " N " << N << " act "
                                              << ptq::to_string(a.act) << (a.symmetric ? " sym" : " asym")
                                              << " weight " << ptq::granularity_name(group)
                                              << (wsym ? " sym" : " asym") << (with_bias ? " bias" : ""));
            ptq::QuantizedLinearParams p;
            p.weight = ptq::quantize_weight(w, spec(8, group, wsym));
            if (with_bias) p.bias = bias;
            p.act = a.act;
            p.act_symmetric = a.symmetric;
            if (a.act == ptq::ActQuant::kInt8PerTensorStatic) {
              // Calibrated on this very input: nothing clamps.
              auto qp = ptq::static_activation_qparams(x.min().item<double>(), x.max().item<double>(), a.symmetric);
              p.input_scale = qp.scale;
              p.input_zero_point = qp.zero_point;
            }
            auto kernel = reference()->make_linear_kernel(p, torch::kFloat32);
            auto y = kernel->forward(x);
            ASSERT_EQ(y.sizes(), (std::vector<int64_t>{M, N}));
            EXPECT_TRUE(torch::equal(y, direct_w8a8(x, p))) << "max diff "
                                                            << (y - direct_w8a8(x, p)).abs().max().item<float>();

            // Against float: |x.w - x'.w'| <= sum_k |x_k| sw/2 + |w'_k| sx/2 (each operand within half a step).
            auto x64 = x.to(torch::kFloat64);
            auto w64 = w.to(torch::kFloat64);
            auto exact = torch::matmul(x64, w64.t());
            if (with_bias) exact = exact + bias.to(torch::kFloat64);
            auto qa = a.act == ptq::ActQuant::kInt8PerTokenDynamic
                          ? ptq::quantize_per_token_int8(x, a.symmetric)
                          : ptq::quantize_per_tensor_int8(x, p.input_scale, p.input_zero_point);
            auto sx = (qa.scale.numel() == 1 ? qa.scale.reshape({1, 1}) : qa.scale).to(torch::kFloat64);
            auto sw = p.weight.scale.reshape({1, N}).to(torch::kFloat64);
            auto wq = p.weight.dequantize().to(torch::kFloat64);
            auto bound = x64.abs().sum(1, true) * sw * 0.5 + sx * 0.5 * wq.abs().sum(1).view({1, N});
            auto slack = torch::matmul(x64.abs(), w64.abs().t()) * 1e-5 + 1e-6;  // float32 epilogue rounding
            auto err = (y.to(torch::kFloat64) - exact).abs();
            EXPECT_TRUE(err.le(bound * ptq::tol::kOneStep + slack).all().item<bool>())
                << "worst err / bound " << (err / bound).max().item<double>();
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 5 * 3 * 4 * 2);
}

TEST_F(ReferenceBackendTest, W8A8HandlesBatchedInputsAndReducedPrecision) {
  torch::manual_seed(12);
  auto w = torch::randn({19, 72});
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(w, spec(8, ptq::kPerChannel, true));
  p.act = ptq::ActQuant::kInt8PerTokenDynamic;
  auto kernel = reference()->make_linear_kernel(p, torch::kBFloat16);
  auto x = torch::randn({2, 5, 72}).to(torch::kBFloat16);
  auto y = kernel->forward(x);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 19}));
  EXPECT_TRUE(torch::equal(y, direct_w8a8(x, p)));
  EXPECT_EQ(kernel->name(), "reference:w8a8-dynamic");
  EXPECT_EQ(kernel->weight_bytes(), 19 * 72 + 19 * 4);
}

TEST(ExactIntMatmul, MatchesInt64AndRejectsInt32Overflow) {
  torch::manual_seed(13);
  auto a = torch::randint(-128, 128, {7, 300}, torch::kInt8);
  auto b = torch::randint(-128, 128, {9, 300}, torch::kInt8);
  auto ref = (a.to(torch::kInt64).unsqueeze(1) * b.to(torch::kInt64).unsqueeze(0)).sum(-1);
  EXPECT_TRUE(torch::equal(ptq::reference::exact_int_matmul(a, b).to(torch::kInt64), ref));
  // 128 * 128 * 131072 = 2^31: one past what an int32 accumulator holds.
  auto big = torch::full({1, 131072}, -128, torch::kInt8);
  EXPECT_NE(error_of([&] { ptq::reference::exact_int_matmul(big, big); }).find("int32"), std::string::npos);
}

// ---- weight-only ---------------------------------------------------------------------------------------

TEST_F(ReferenceBackendTest, WeightOnlyEqualsDequantizeThenLinear) {
  torch::manual_seed(14);
  struct Shape {
    int64_t K, N;
    std::vector<int64_t> groups;
  };
  const std::vector<Shape> shapes = {{256, 40, {ptq::kPerChannel, 16, 32, 64, 128}},
                                     {96, 33, {ptq::kPerChannel, 16, 32}},
                                     {100, 7, {ptq::kPerChannel, ptq::kPerTensor, 20}}};
  for (const auto& s : shapes) {
    auto w = torch::randn({s.N, s.K}) * 0.05;
    auto bias = torch::randn({s.N});
    for (int bits : {3, 4, 8}) {
      for (int64_t g : s.groups) {
        for (bool sym : {true, false}) {
          ptq::QuantizedLinearParams p;
          p.weight = ptq::quantize_weight(w, spec(bits, g, sym));
          p.bias = bias;
          for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
            auto kernel = reference()->make_linear_kernel(p, dtype);
            for (int64_t M : {1, 2, 5, 16, 33}) {
              SCOPED_TRACE(::testing::Message() << "K " << s.K << " N " << s.N << " bits " << bits << " group " << g
                                                << (sym ? " sym" : " asym") << " M " << M << " "
                                                << c10::toString(dtype));
              auto x = torch::randn({M, s.K}).to(dtype);
              auto expected = torch::linear(x, p.weight.dequantize(dtype), bias.to(dtype));
              EXPECT_TRUE(torch::equal(kernel->forward(x), expected));
            }
          }
        }
      }
    }
  }
}

TEST_F(ReferenceBackendTest, KernelNamesAndBytes) {
  auto w = torch::randn({64, 256});
  auto make = [&](int bits, int64_t g, bool sym, ptq::ActQuant act) {
    ptq::QuantizedLinearParams p;
    p.weight = ptq::quantize_weight(w, spec(bits, g, sym));
    p.act = act;
    if (act == ptq::ActQuant::kInt8PerTensorStatic) p.input_scale = torch::tensor(0.1f);
    return reference()->make_linear_kernel(p, torch::kFloat32);
  };
  auto w4 = make(4, 128, false, ptq::ActQuant::kNone);
  EXPECT_EQ(w4->name(), "reference:w4a16-g128-asym");
  EXPECT_EQ(w4->weight_bytes(), 64 * 256 / 2 + 64 * 2 * 4 + 64 * 2);
  EXPECT_EQ(make(8, ptq::kPerChannel, true, ptq::ActQuant::kNone)->name(), "reference:w8a16");
  EXPECT_EQ(make(3, 64, true, ptq::ActQuant::kNone)->name(), "reference:w3a16-g64");
  EXPECT_EQ(make(8, ptq::kPerChannel, true, ptq::ActQuant::kInt8PerTensorStatic)->name(), "reference:w8a8-static");
  EXPECT_EQ(make(8, ptq::kPerTensor, true, ptq::ActQuant::kInt8PerTokenDynamic)->name(),
            "reference:w8a8-per-tensor-dynamic");
}

TEST_F(ReferenceBackendTest, LinearSlotRunsTheKernel) {
  torch::manual_seed(15);
  ptq::Linear linear(96, 48, /*with_bias=*/true);
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(linear->weight, spec(4, 32, true));
  p.bias = linear->bias;
  linear->set_kernel(reference()->make_linear_kernel(p, torch::kFloat32));
  EXPECT_EQ(linear->kernel_name(), "reference:w4a16-g32");
  auto x = torch::randn({3, 4, 96});
  auto y = linear->forward(x);
  EXPECT_TRUE(torch::equal(y, ptq::reference::weight_only_linear(x, p.weight, p.bias)));
  // int4 g32 stays close to the float layer: SQNR of the output well above 15 dB.
  auto reference_y = torch::linear(x, linear->weight, linear->bias);
  EXPECT_GT(ptq::tol::sqnr_db(reference_y, y), 15.0);
}

TEST_F(ReferenceBackendTest, FakeQuantKernel) {
  torch::manual_seed(16);
  auto w = torch::randn({24, 64});
  auto b = torch::randn({24});
  ptq::FakeQuantLinearParams fp;
  fp.weight = w;
  fp.bias = b;
  fp.weight_spec = spec(4, 32, false);
  fp.act = ptq::ActQuant::kInt8PerTokenDynamic;
  auto kernel = reference()->make_fake_quant_kernel(fp);
  auto x = torch::randn({5, 64});
  auto expected = torch::linear(ptq::fake_quantize_per_token_int8(x), ptq::fake_quantize_weight(w, fp.weight_spec), b);
  EXPECT_TRUE(torch::equal(kernel->forward(x), expected));
  EXPECT_EQ(kernel->name(), "reference:fake-w4a8-g32-asym-dynamic");
  // Float weights, static activations.
  fp.weight_spec.bits = 0;
  fp.act = ptq::ActQuant::kInt8PerTensorStatic;
  fp.input_scale = torch::tensor(0.05f);
  auto act_only = reference()->make_fake_quant_kernel(fp);
  EXPECT_TRUE(torch::equal(act_only->forward(x),
                           torch::linear(ptq::fake_quantize_per_tensor_int8(x, fp.input_scale), w, b)));
  fp.input_scale = torch::Tensor();
  EXPECT_NE(error_of([&] { reference()->make_fake_quant_kernel(fp); }).find("input_scale"), std::string::npos);
}

// ---- registry and selection ------------------------------------------------------------------------

// A backend that declines everything, to exercise fallbacks. Registered for one test, then removed.
class DecliningBackend : public ptq::Backend {
 public:
  std::string name() const override { return "test-declining"; }
  ptq::Support supports(const ptq::LinearScheme&) const override { return ptq::Support::no("test reason"); }
  std::shared_ptr<ptq::LinearKernel> make_linear_kernel(const ptq::QuantizedLinearParams&,
                                                        torch::ScalarType) const override {
    ptq::fail("declining backend makes no kernels");
  }
};

TEST_F(ReferenceBackendTest, RegistryLookupAndErrors) {
  ForceReference off(false);
  auto names = ptq::available_backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "reference"), names.end());
  EXPECT_EQ(ptq::backend("reference")->name(), "reference");
  EXPECT_EQ(ptq::find_backend("no-such-backend"), nullptr);
  const std::string msg = error_of([] { ptq::backend("no-such-backend"); });
  EXPECT_NE(msg.find("'no-such-backend'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("registered: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("reference"), std::string::npos) << msg;
  ptq::register_builtin_backends();  // idempotent
  names = ptq::available_backends();
  EXPECT_EQ(std::count(names.begin(), names.end(), "reference"), 1);
}

TEST_F(ReferenceBackendTest, SupportAnswersWithReasons) {
  auto ref = reference();
  ptq::LinearScheme s;
  s.weight_bits = 4;
  s.group_size = 128;
  s.weight_symmetric = false;
  EXPECT_TRUE(ref->supports(s).ok);
  EXPECT_EQ(s.name(), "w4a16-g128-asym");
  s.act = ptq::ActQuant::kInt8PerTokenDynamic;
  auto no = ref->supports(s);
  EXPECT_FALSE(no.ok);
  EXPECT_NE(no.reason.find("int8 weights"), std::string::npos) << no.reason;
  s.weight_bits = 8;
  no = ref->supports(s);
  EXPECT_FALSE(no.ok);
  EXPECT_NE(no.reason.find("group size 128"), std::string::npos) << no.reason;
  s.group_size = ptq::kPerChannel;
  s.weight_symmetric = true;
  EXPECT_TRUE(ref->supports(s).ok);
  s.weight_bits = 5;
  EXPECT_FALSE(ref->supports(s).ok);
  EXPECT_TRUE(ref->supports_kv(ptq::KVQuantParams::dynamic_per_token()).ok);

  // make_linear_kernel refuses what supports() declines, with the reason.
  ptq::QuantizedLinearParams p;
  p.weight = ptq::quantize_weight(torch::randn({8, 64}), spec(4, 32, true));
  p.act = ptq::ActQuant::kInt8PerTokenDynamic;
  const std::string msg = error_of([&] { ref->make_linear_kernel(p, torch::kFloat32); });
  EXPECT_NE(msg.find("w4a8-g32-dynamic"), std::string::npos) << msg;
  EXPECT_NE(msg.find("int8 weights"), std::string::npos) << msg;
  // Static activations without an input scale are a validation error naming the field.
  p.weight = ptq::quantize_weight(torch::randn({8, 64}), spec(8, ptq::kPerChannel, true));
  p.act = ptq::ActQuant::kInt8PerTensorStatic;
  EXPECT_NE(error_of([&] { ref->make_linear_kernel(p, torch::kFloat32); }).find("input_scale"), std::string::npos);
}

TEST_F(ReferenceBackendTest, SelectionFallsBackWithReasonsAndHonoursTheSwitch) {
  ForceReference off(false);
  // The policy is tested with the reference backend alone: optimized built-ins (cpu) would win "auto".
  for (const std::string& name : ptq::available_backends()) {
    if (name != "reference") ptq::unregister_backend(name);
  }
  struct RestoreBuiltins {
    ~RestoreBuiltins() { ptq::register_builtin_backends(); }
  } restore_builtins;
  ptq::LinearScheme s;
  s.weight_bits = 4;
  s.group_size = 128;
  auto cpu = torch::Device(torch::kCPU);
  auto plain = ptq::select_backend("auto", s, cpu);
  EXPECT_EQ(plain.backend->name(), "reference");
  EXPECT_EQ(plain.fallback_reason, "");

  ptq::register_backend(std::make_shared<DecliningBackend>());
  struct Unregister {
    ~Unregister() { ptq::unregister_backend("test-declining"); }
  } unregister;
  auto named = ptq::select_backend("test-declining", s, cpu);
  EXPECT_EQ(named.backend->name(), "reference");
  EXPECT_NE(named.fallback_reason.find("test-declining declined w4a16-g128 on cpu: test reason"), std::string::npos)
      << named.fallback_reason;
  auto automatic = ptq::select_backend("auto", s, cpu);
  EXPECT_EQ(automatic.backend->name(), "reference");
  EXPECT_NE(automatic.fallback_reason.find("test reason"), std::string::npos);
  EXPECT_EQ(ptq::backend("test-declining")->name(), "test-declining");
  EXPECT_EQ(ptq::backend("auto")->name(), "test-declining");  // first non-reference backend
  EXPECT_NE(error_of([&] { ptq::select_backend("no-such-backend", s, cpu); }).find("no-such-backend"),
            std::string::npos);
  {
    ForceReference on(true);
    EXPECT_TRUE(ptq::reference_backend_forced());
    EXPECT_EQ(ptq::backend("test-declining")->name(), "reference");
    auto forced = ptq::select_backend("test-declining", s, cpu);
    EXPECT_EQ(forced.backend->name(), "reference");
    EXPECT_NE(forced.fallback_reason.find("forced"), std::string::npos);
  }
  EXPECT_FALSE(ptq::reference_backend_forced());
  // The reference declining is an error, not a fallback.
  s.weight_bits = 5;
  EXPECT_NE(error_of([&] { ptq::select_backend("reference", s, cpu); }).find("5-bit"), std::string::npos);
}

// A backend whose int8 KV cache runs on one other device only (a stand-in for the cuda backend on a
// machine without a GPU; the meta device plays the GPU): its caches are float caches on the CPU named
// "test-other-device".
class OtherDeviceKVBackend : public DecliningBackend {
 public:
  std::string name() const override { return "test-other-device-kv"; }
  ptq::Support supports_device(const torch::Device& device) const override {
    return device.is_meta() ? ptq::Support::yes() : ptq::Support::no("meta devices only");
  }
  ptq::Support supports_kv(const ptq::KVQuantParams&) const override { return ptq::Support::yes(); }
  std::shared_ptr<ptq::KVCacheFormat> make_kv_cache_format(const ptq::KVQuantParams& params) const override {
    struct Cache : ptq::FloatKVCache {
      using FloatKVCache::FloatKVCache;
      std::string name() const override { return "test-other-device"; }
    };
    struct Format : ptq::Int8KVCacheFormat {
      using Int8KVCacheFormat::Int8KVCacheFormat;
      std::unique_ptr<ptq::KVCache> create(const ptq::KVCacheShape& shape) const override {
        ptq::KVCacheShape on_cpu = shape;
        on_cpu.device = torch::kCPU;
        return std::make_unique<Cache>(on_cpu);
      }
    };
    return std::make_shared<Format>(params);
  }
};

// "auto" picks the KV cache's backend by the device each cache is created on: with backends for
// different devices built (cpu and cuda on a GPU machine), a CUDA model must not get the CPU backend's
// choice (which is the reference cache there).
TEST_F(ReferenceBackendTest, AutoKVCacheFormatChoosesByTheCacheDevice) {
  ForceReference off(false);
  for (const std::string& name : ptq::available_backends()) {
    if (name != "reference") ptq::unregister_backend(name);
  }
  struct RestoreBuiltins {
    ~RestoreBuiltins() {
      ptq::unregister_backend("test-other-device-kv");
      ptq::register_builtin_backends();
    }
  } restore_builtins;
  ptq::register_backend(std::make_shared<OtherDeviceKVBackend>());
  for (const auto& params : {ptq::KVQuantParams::dynamic_per_token(),
                             ptq::KVQuantParams::static_per_channel(torch::tensor(0.05f), torch::tensor(0.02f))}) {
    auto format = ptq::make_int8_kv_cache_format("auto", params);
    ASSERT_NE(dynamic_cast<ptq::Int8KVCacheFormat*>(format.get()), nullptr);  // checkpoints read its params
    EXPECT_EQ(format->name(), params.to_string());
    const ptq::KVCacheShape shape{1, 2, 16, 4, torch::kFloat32, torch::kCPU};
    ptq::KVCacheShape on_other = shape;
    on_other.device = torch::Device(torch::kMeta);
    EXPECT_EQ(format->create(on_other)->name(), "test-other-device");
    EXPECT_EQ(format->create(shape)->name(), params.to_string());  // the reference cache: the backend declined
    EXPECT_EQ(format->create(on_other)->name(), "test-other-device");  // the choice is per device, not the first
    {
      ForceReference on(true);
      EXPECT_EQ(ptq::make_int8_kv_cache_format("auto", params)->create(on_other)->name(), params.to_string());
    }
    // A named backend is asked about the device too: on one it declines, the reference cache.
    auto named = ptq::make_int8_kv_cache_format("test-other-device-kv", params);
    EXPECT_EQ(named->create(on_other)->name(), "test-other-device");
    EXPECT_EQ(named->create(shape)->name(), params.to_string());
  }
}

// ---- int8 KV cache ---------------------------------------------------------------------------------

struct KVData {
  torch::Tensor k, v;  // [B, Hkv, S, D] float32
};

KVData kv_data(int64_t B, int64_t Hkv, int64_t S, int64_t D) {
  // Channels of very different magnitude (what makes per-channel key scales worth having).
  auto channel_scale = torch::exp(torch::randn({1, Hkv, 1, D}));
  return {torch::randn({B, Hkv, S, D}) * channel_scale, torch::randn({B, Hkv, S, D})};
}

// Appends in prefill + decode chunks that overflow the initial capacity several times.
void fill(ptq::KVCache& cache, const KVData& d) {
  int64_t pos = 0;
  for (int64_t t : {7, 1, 1, 1, 5, 1}) {
    cache.append(d.k.narrow(2, pos, t), d.v.narrow(2, pos, t));
    pos += t;
  }
}

TEST(Int8KVCache, StaticPerChannelWithinOneStepAndCloseAttention) {
  torch::manual_seed(21);
  const int64_t B = 2, Hkv = 2, H = 4, S = 16, D = 64;
  auto d = kv_data(B, Hkv, S, D);
  // Calibrated per (head, channel) absmax over batch and positions.
  auto k_scale = ptq::kv_scale_from_absmax(d.k.abs().amax({0, 2}));  // [Hkv, D]
  auto v_scale = ptq::kv_scale_from_absmax(d.v.abs().amax({0, 2})).flatten();  // [Hkv * D] also accepted
  ptq::Int8KVCacheFormat format(ptq::KVQuantParams::static_per_channel(k_scale, v_scale));
  ptq::KVCacheShape shape{B, Hkv, D, /*capacity=*/4, torch::kFloat32, torch::kCPU};
  auto cache_ptr = format.create(shape);
  auto& cache = dynamic_cast<ptq::Int8KVCache&>(*cache_ptr);
  fill(cache, d);
  ASSERT_EQ(cache.length(), S);
  EXPECT_EQ(cache.name(), "int8-static-per-channel");
  EXPECT_EQ(cache.key_codes().scalar_type(), torch::kInt8);
  EXPECT_EQ(cache.key_scales().sizes(), (std::vector<int64_t>{Hkv, D}));
  auto k_err = (cache.keys() - d.k).abs();
  EXPECT_TRUE(k_err.le(k_scale.view({1, Hkv, 1, D}) * ptq::tol::kHalfStep).all().item<bool>());
  auto v_err = (cache.values() - d.v).abs();
  EXPECT_TRUE(v_err.le(v_scale.view({1, Hkv, 1, D}) * ptq::tol::kHalfStep).all().item<bool>());

  auto q = torch::randn({B, H, 3, D});
  auto valid = torch::ones({B, S}, torch::kBool);
  auto mask = ptq::causal_attention_mask(valid, S - 3, 3);
  const double scale = 1.0 / std::sqrt(double(D));
  auto expected = ptq::grouped_query_attention(q, d.k, d.v, mask, scale);
  const double e = ptq::tol::nmse(expected, cache.attend(q, mask, scale));
  std::cout << "  static per-channel int8 KV attention nmse " << e << "\n";
  EXPECT_LT(e, ptq::tol::kInt8KVAttentionNmse);
}

TEST(Int8KVCache, DynamicPerTokenWithinOneStepAndCloseAttention) {
  torch::manual_seed(22);
  const int64_t B = 2, Hkv = 2, H = 6, S = 16, D = 64;
  auto d = kv_data(B, Hkv, S, D);
  ptq::Int8KVCacheFormat format(ptq::KVQuantParams::dynamic_per_token());
  auto cache_ptr = format.create({B, Hkv, D, 4, torch::kFloat32, torch::kCPU});
  auto& cache = dynamic_cast<ptq::Int8KVCache&>(*cache_ptr);
  fill(cache, d);
  EXPECT_EQ(cache.name(), "int8-dynamic-per-token");
  ASSERT_EQ(cache.key_scales().sizes(), (std::vector<int64_t>{B, Hkv, S}));
  EXPECT_TRUE(torch::equal(cache.key_scales(), d.k.abs().amax(-1) / 127.0));
  auto k_err = (cache.keys() - d.k).abs();
  EXPECT_TRUE(k_err.le(cache.key_scales().unsqueeze(-1) * ptq::tol::kHalfStep).all().item<bool>());
  auto v_err = (cache.values() - d.v).abs();
  EXPECT_TRUE(v_err.le(cache.value_scales().unsqueeze(-1) * ptq::tol::kHalfStep).all().item<bool>());

  auto q = torch::randn({B, H, 1, D});
  auto valid = torch::ones({B, S}, torch::kBool);
  valid[0][0] = false;  // left padding in sequence 0
  auto mask = ptq::causal_attention_mask(valid, S - 1, 1);
  const double scale = 1.0 / std::sqrt(double(D));
  auto expected = ptq::grouped_query_attention(q, d.k, d.v, mask, scale);
  const double e = ptq::tol::nmse(expected, cache.attend(q, mask, scale));
  std::cout << "  dynamic per-token int8 KV attention nmse " << e << "\n";
  EXPECT_LT(e, ptq::tol::kInt8KVAttentionNmse);
}

TEST(Int8KVCache, MemoryIsAboutHalfOfBf16AndAQuarterOfFp32) {
  torch::manual_seed(23);
  const int64_t B = 1, Hkv = 4, S = 16, D = 128;
  auto d = kv_data(B, Hkv, S, D);
  auto fill_cache = [&](const ptq::KVCacheFormat& f, torch::ScalarType dtype) {
    auto c = f.create({B, Hkv, D, 8, dtype, torch::kCPU});
    KVData typed{d.k.to(dtype), d.v.to(dtype)};
    fill(*c, typed);
    return c->memory_bytes();
  };
  ptq::FloatKVCacheFormat float_format;
  const double bf16 = fill_cache(float_format, torch::kBFloat16);
  const double fp32 = fill_cache(float_format, torch::kFloat32);
  ptq::Int8KVCacheFormat dynamic_format(ptq::KVQuantParams::dynamic_per_token());
  ptq::Int8KVCacheFormat static_format(
      ptq::KVQuantParams::static_per_channel(torch::tensor(0.05f), torch::full({Hkv}, 0.02f)));
  const double dyn = fill_cache(dynamic_format, torch::kBFloat16);
  const double sta = fill_cache(static_format, torch::kBFloat16);
  EXPECT_DOUBLE_EQ(sta / bf16, 0.5);
  EXPECT_DOUBLE_EQ(sta / fp32, 0.25);
  EXPECT_DOUBLE_EQ(dyn / bf16, (2.0 * D + 8) / (4.0 * D));  // + one float32 scale per token, head, k/v
  EXPECT_LT(dyn / fp32, 0.27);
  // The compute dtype comes back out.
  auto c = static_format.create({B, Hkv, D, 8, torch::kBFloat16, torch::kCPU});
  c->append(d.k.narrow(2, 0, 2).to(torch::kBFloat16), d.v.narrow(2, 0, 2).to(torch::kBFloat16));
  EXPECT_EQ(c->keys().scalar_type(), torch::kBFloat16);
}

TEST(Int8KVCache, ScaleShapesAndErrors) {
  const int64_t Hkv = 2, D = 4;
  auto full = ptq::normalize_kv_scale(torch::tensor(0.5f), Hkv, D, "k_scale");
  EXPECT_EQ(full.sizes(), (std::vector<int64_t>{Hkv, D}));
  EXPECT_TRUE(full.eq(0.5).all().item<bool>());
  auto per_head = ptq::normalize_kv_scale(torch::tensor({1.f, 2.f}), Hkv, D, "k_scale");
  EXPECT_FLOAT_EQ(per_head[1][3].item<float>(), 2.f);
  auto flat = ptq::normalize_kv_scale(torch::arange(1, 9, torch::kFloat32), Hkv, D, "k_scale");
  EXPECT_FLOAT_EQ(flat[1][0].item<float>(), 5.f);
  const std::string msg = error_of([&] { ptq::normalize_kv_scale(torch::ones({3}), Hkv, D, "v_scale"); });
  EXPECT_NE(msg.find("v_scale has shape [3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { ptq::normalize_kv_scale(torch::zeros({1}), Hkv, D, "k_scale"); }).find("positive"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ptq::Int8KVCacheFormat f(ptq::KVQuantParams::static_per_channel(torch::Tensor(), torch::Tensor()));
            }).find("k_scale"),
            std::string::npos);
  ptq::Int8KVCacheFormat format(ptq::KVQuantParams::dynamic_per_token());
  auto cache = format.create({1, Hkv, D, 4, torch::kFloat32, torch::kCPU});
  EXPECT_NE(error_of([&] { cache->append(torch::zeros({1, 3, 1, D}), torch::zeros({1, 3, 1, D})); }).find("keys"),
            std::string::npos);
  // An all-zero token stores scale 1 and exact zeros.
  cache->append(torch::zeros({1, Hkv, 1, D}), torch::zeros({1, Hkv, 1, D}));
  EXPECT_TRUE(cache->keys().eq(0).all().item<bool>());
}

TEST_F(ReferenceBackendTest, BackendMakesTheInt8KVFormat) {
  auto f = reference()->make_kv_cache_format(ptq::KVQuantParams::dynamic_per_token());
  EXPECT_EQ(f->name(), "int8-dynamic-per-token");
  auto cache = f->create({1, 1, 8, 4, torch::kFloat32, torch::kCPU});
  EXPECT_NE(dynamic_cast<ptq::Int8KVCache*>(cache.get()), nullptr);
  // A backend without KV support says so.
  DecliningBackend declining;
  EXPECT_FALSE(declining.supports_kv(ptq::KVQuantParams::dynamic_per_token()).ok);
  EXPECT_NE(error_of([&] { declining.make_kv_cache_format(ptq::KVQuantParams::dynamic_per_token()); })
                .find("not supported on test-declining"),
            std::string::npos);
}


// ---- any device ----------------------------------------------------------------------------------------

// The reference path is plain LibTorch, so on CUDA it computes what it computes on the CPU: codes, scales
// and the W8A8 result bit for bit (IEEE division, exact float64 integer matmul, the same float32
// epilogue); weight-only results up to the float matmul's reordering; the int8 KV cache bit for bit.
TEST_F(ReferenceBackendTest, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(31);
  const torch::Device gpu(torch::kCUDA);
  auto w = torch::randn({72, 200}) * 0.1;
  auto x = torch::randn({33, 200});
  for (int bits : {3, 4, 8}) {
    for (bool sym : {true, false}) {
      auto s = spec(bits, bits == 8 ? ptq::kPerChannel : 40, sym);
      auto cpu_q = ptq::quantize_weight(w, s);
      auto gpu_q = ptq::quantize_weight(w.to(gpu), s);
      gpu_q.validate();
      EXPECT_TRUE(torch::equal(gpu_q.data.cpu(), cpu_q.data)) << s.to_string();
      EXPECT_TRUE(torch::equal(gpu_q.scale.cpu(), cpu_q.scale)) << s.to_string();
      ptq::QuantizedLinearParams p;
      p.weight = gpu_q;
      auto y = reference()->make_linear_kernel(p, torch::kFloat32)->forward(x.to(gpu));
      auto y_cpu = ptq::reference::weight_only_linear(x, cpu_q, torch::Tensor());
      EXPECT_TRUE(ptq::tol::all_close(y_cpu, y.cpu(), ptq::tol::kFp32Rel, 1e-4)) << s.to_string();
    }
  }
  for (bool asym_act : {false, true}) {
    ptq::QuantizedLinearParams p;
    p.weight = ptq::quantize_weight(w, spec(8, ptq::kPerChannel, true));
    p.bias = torch::randn({72});
    p.act = ptq::ActQuant::kInt8PerTokenDynamic;
    p.act_symmetric = !asym_act;
    auto y_cpu = reference()->make_linear_kernel(p, torch::kFloat32)->forward(x);
    ptq::QuantizedLinearParams pg = p;
    pg.weight = p.weight.to(gpu);
    pg.bias = p.bias.to(gpu);
    auto y_gpu = reference()->make_linear_kernel(pg, torch::kFloat32)->forward(x.to(gpu));
    EXPECT_TRUE(torch::equal(y_gpu.cpu(), y_cpu));
  }
  auto d = kv_data(2, 2, 16, 64);
  for (auto params : {ptq::KVQuantParams::dynamic_per_token(),
                      ptq::KVQuantParams::static_per_channel(ptq::kv_scale_from_absmax(d.k.abs().amax({0, 2})),
                                                             torch::tensor(0.05f))}) {
    auto format = reference()->make_kv_cache_format(params);
    auto c_cpu = format->create({2, 2, 64, 4, torch::kFloat32, torch::kCPU});
    auto c_gpu = format->create({2, 2, 64, 4, torch::kFloat32, gpu});
    fill(*c_cpu, d);
    fill(*c_gpu, {d.k.to(gpu), d.v.to(gpu)});
    EXPECT_TRUE(torch::equal(c_gpu->keys().cpu(), c_cpu->keys())) << params.to_string();
    EXPECT_TRUE(torch::equal(c_gpu->values().cpu(), c_cpu->values())) << params.to_string();
  }
}

}  // namespace
