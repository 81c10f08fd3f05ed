// Quantization primitives: integer ranges and block sizes, the compressed-tensors int32 packing, weight
// quantization (every bits x granularity x symmetry within half a step, hand-computed codes, rounding
// and clamping, clipping, precomputed parameters, errors), SQNR on Gaussian weights, and int8
// activation quantization.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "framework/activation_quant.h"
#include "framework/error.h"
#include "kernel_test_util.h"
#include "test_util.h"
#include "framework/quant_types.h"
#include "framework/quantized_weight.h"
#include "framework/tolerances.h"

namespace {

using ptq::testing::error_of;
using ptq::testing::spec;

using ptq::QuantizedWeight;
using ptq::WeightQuantSpec;

// scale [out, G] expanded to one value per weight element [out, in].
torch::Tensor per_element(const torch::Tensor& scale, int64_t in) {
  return scale.repeat_interleave(in / scale.size(1), 1);
}

torch::Tensor floats(std::vector<float> v) { return torch::tensor(v, torch::kFloat32); }

// ---- ranges and block sizes --------------------------------------------------------------------------

TEST(QuantTypes, SignedRangesAndUnsignedOffsets) {
  EXPECT_EQ(ptq::qmin(8), -128);
  EXPECT_EQ(ptq::qmax(8), 127);
  EXPECT_EQ(ptq::qmin(4), -8);
  EXPECT_EQ(ptq::qmax(4), 7);
  EXPECT_EQ(ptq::qmin(3), -4);
  EXPECT_EQ(ptq::qmax(3), 3);
  EXPECT_EQ(ptq::unsigned_offset(4), 8);
  EXPECT_EQ(ptq::unsigned_qmax(4), 15);
  EXPECT_EQ(ptq::bits(ptq::QuantDtype::kInt4), 4);
  EXPECT_EQ(ptq::quant_dtype_from_bits(3), ptq::QuantDtype::kInt3);
  EXPECT_NE(error_of([] { ptq::quant_dtype_from_bits(5); }).find("got 5"), std::string::npos);
  EXPECT_EQ(ptq::pack_factor(ptq::PackingFormat::kInt4PackedInt32), 8);
  EXPECT_EQ(ptq::pack_factor(ptq::PackingFormat::kInt3PackedInt32), 10);
  EXPECT_EQ(ptq::pack_factor(ptq::PackingFormat::kInt8Plain), 1);
}

TEST(QuantTypes, GranularityIsABlockSize) {
  auto t = ptq::block_size(ptq::kPerTensor, 6, 40);
  EXPECT_EQ(t.rows, 6);
  EXPECT_EQ(t.cols, 40);
  auto c = ptq::block_size(ptq::kPerChannel, 6, 40);
  EXPECT_EQ(c.rows, 1);
  EXPECT_EQ(c.cols, 40);
  auto g = ptq::block_size(8, 6, 40);
  EXPECT_EQ(g.rows, 1);
  EXPECT_EQ(g.cols, 8);
  EXPECT_EQ(ptq::num_groups(8, 40), 5);
  EXPECT_EQ(ptq::num_groups(ptq::kPerChannel, 40), 1);
  EXPECT_EQ(ptq::granularity_name(128), "g128");
  EXPECT_EQ(ptq::granularity_name(ptq::kPerChannel), "per-channel");
  EXPECT_EQ(ptq::granularity_name(ptq::kPerTensor), "per-tensor");
}

TEST(QuantTypes, GroupSizeThatDoesNotDivideNamesBothNumbers) {
  const std::string msg = error_of([] { ptq::block_size(48, 4, 100); });
  EXPECT_NE(msg.find("group size 48"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in_features 100"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { ptq::block_size(-3, 4, 100); }).find("-3"), std::string::npos);
  // quantize_weight reports the same.
  const std::string q = error_of([] { ptq::quantize_weight(torch::randn({4, 100}), spec(4, 48, true)); });
  EXPECT_NE(q.find("group size 48 does not divide in_features 100"), std::string::npos) << q;
}

// ---- packing -----------------------------------------------------------------------------------------

TEST(Packing, NibbleOrderMatchesCompressedTensors) {
  // Codes -8..-1 are unsigned 0..7; the first code sits in the least significant nibble.
  auto codes = torch::arange(-8, 0, torch::kInt8).view({1, 8});
  auto packed = ptq::pack_int4(codes);
  ASSERT_EQ(packed.scalar_type(), torch::kInt32);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(packed.item<int32_t>(), 0x76543210);
  // compressed-tensors' pack_to_int32 docstring example: 8-bit [1, 2] -> unsigned [129, 130] -> 33409.
  auto eight = ptq::pack_int32(torch::tensor({1, 2}, torch::kInt8).view({1, 2}), 8);
  EXPECT_EQ(eight.item<int32_t>(), 33409);
  // A code 7 in the top nibble sets the sign bit: unsigned 0xF0000000 + 8 lower nibbles of 8 (code 0).
  auto top = torch::zeros({1, 8}, torch::kInt8);
  top[0][7] = 7;
  EXPECT_EQ(static_cast<uint32_t>(ptq::pack_int4(top).item<int32_t>()), 0xF8888888u);
}

TEST(Packing, RoundTripsEveryWidthDimensionAndPadding) {
  torch::manual_seed(1);
  for (int bits : {3, 4, 8, 2}) {
    for (int64_t cols : {1, 7, 8, 9, 10, 31, 64, 100}) {
      for (int64_t dim : {0, 1}) {
        auto codes = torch::randint(ptq::qmin(bits), ptq::qmax(bits) + 1, {5, cols}, torch::kInt8);
        if (dim == 0) codes = codes.t().contiguous();  // pack the rows of a [cols, 5] tensor
        const int64_t pf = 32 / bits;
        auto packed = ptq::pack_int32(codes, bits, dim);
        const int64_t words = (cols + pf - 1) / pf;
        EXPECT_EQ(packed.size(dim), words) << bits << " bits, " << cols << " codes, dim " << dim;
        auto back = ptq::unpack_int32(packed, bits, cols, dim);
        EXPECT_TRUE(torch::equal(back, codes)) << bits << " bits, " << cols << " codes, dim " << dim;
      }
    }
  }
}

TEST(Packing, RejectsOutOfRangeCodesAndWrongSizes) {
  auto bad = torch::full({1, 8}, 8, torch::kInt8);  // 8 is not a 4-bit signed code
  EXPECT_NE(error_of([&] { ptq::pack_int4(bad); }).find("[-8, 7]"), std::string::npos);
  auto packed = ptq::pack_int4(torch::zeros({2, 16}, torch::kInt8));
  EXPECT_NE(error_of([&] { ptq::unpack_int4(packed, 17); }).find("17"), std::string::npos);
  EXPECT_NE(error_of([&] { ptq::pack_int4(torch::zeros({2, 16}, torch::kInt32)); }).find("Char"), std::string::npos);
}

// ---- weight quantization -----------------------------------------------------------------------------

TEST(WeightQuant, HandComputedSymmetricCodesRoundHalfToEvenAndClamp) {
  // absmax 7.5 -> scale 7.5 / 7.5 = 1 exactly; codes are round-half-even(w), clamped to [-8, 7].
  auto w = floats({-7.5f, 3.f, 7.5f, 0.75f, 2.5f, -0.5f, 1.5f, -2.5f}).view({1, 8});
  auto q = ptq::quantize_weight(w, spec(4, ptq::kPerChannel, true));
  EXPECT_FLOAT_EQ(q.scale.item<float>(), 1.0f);
  EXPECT_FALSE(q.zero_point.defined());
  auto expected = torch::tensor({-8, 3, 7, 1, 2, 0, 2, -2}, torch::kInt8).view({1, 8});
  EXPECT_TRUE(torch::equal(q.unpacked_int8(), expected)) << q.unpacked_int8();
  // int8: absmax / 127.5, -absmax -> -128.
  auto w8 = floats({-255.f, 1.f, 255.f, 0.f}).view({1, 4});
  auto q8 = ptq::quantize_weight(w8, spec(8, ptq::kPerChannel, true));
  EXPECT_FLOAT_EQ(q8.scale.item<float>(), 2.0f);
  EXPECT_TRUE(torch::equal(q8.data, torch::tensor({-128, 0, 127, 0}, torch::kInt8).view({1, 4}))) << q8.data;
  EXPECT_EQ(q8.packing, ptq::PackingFormat::kInt8Plain);
}

TEST(WeightQuant, HandComputedAsymmetricCodesAndSignedZeroPoint) {
  // lo = -1, hi = 2.75: scale = 3.75 / 15 = 0.25; zero point = round(-8 - (-1 / 0.25)) = -4
  // (the unsigned zero point 4, shifted by -8).
  auto w = floats({-1.f, 0.f, 0.75f, 2.75f, 0.5f, 1.f, -0.25f, 2.f}).view({1, 8});
  auto q = ptq::quantize_weight(w, spec(4, ptq::kPerChannel, false));
  EXPECT_FLOAT_EQ(q.scale.item<float>(), 0.25f);
  ASSERT_TRUE(q.zero_point.defined());
  EXPECT_EQ(q.zero_point.scalar_type(), torch::kInt8);
  EXPECT_EQ(q.zero_point.item<int>(), -4);
  auto expected = torch::tensor({-8, -4, -1, 7, -2, 0, -5, 4}, torch::kInt8).view({1, 8});
  EXPECT_TRUE(torch::equal(q.unpacked_int8(), expected)) << q.unpacked_int8();
  EXPECT_TRUE(torch::equal(q.dequantize(), w));  // every value is on the grid
}

TEST(WeightQuant, EveryBitsGranularityAndSymmetryWithinHalfAStep) {
  torch::manual_seed(2);
  struct Shape {
    int64_t out, in;
    std::vector<int64_t> groups;
  };
  // in_features 256 (all power-of-two groups), 96 (not a multiple of 64; 32-bit words padded for int3),
  // 100 (no power-of-two group, only per-channel / per-tensor / 20 / 25 / 50).
  const std::vector<Shape> shapes = {
      {24, 256, {ptq::kPerTensor, ptq::kPerChannel, 16, 32, 64, 128, 256}},
      {7, 96, {ptq::kPerTensor, ptq::kPerChannel, 16, 32, 48, 96}},
      {5, 100, {ptq::kPerTensor, ptq::kPerChannel, 20, 25, 50}},
  };
  for (const auto& shape : shapes) {
    auto w = torch::randn({shape.out, shape.in}) * 0.05;
    w[0][0] = 0.4;  // an outlier
    for (int bits : {3, 4, 8}) {
      for (int64_t g : shape.groups) {
        for (bool sym : {true, false}) {
          SCOPED_TRACE(::testing::Message() << "[" << shape.out << ", " << shape.in << "] bits " << bits << " group "
                                            << g << (sym ? " sym" : " asym"));
          auto q = ptq::quantize_weight(w, spec(bits, g, sym));
          q.validate();
          const int64_t G = ptq::num_groups(g, shape.in);
          ASSERT_EQ(q.scale.sizes(), (std::vector<int64_t>{shape.out, G}));
          auto codes = q.unpacked_int8();
          EXPECT_GE(codes.min().item<int>(), ptq::qmin(bits));
          EXPECT_LE(codes.max().item<int>(), ptq::qmax(bits));
          auto err = (q.dequantize() - w).abs();
          auto bound = per_element(q.scale, shape.in) * ptq::tol::kHalfStep;
          EXPECT_TRUE(err.le(bound).all().item<bool>())
              << "worst error / step = " << (err / per_element(q.scale, shape.in)).max().item<float>();
          if (g == ptq::kPerTensor) {
            EXPECT_TRUE(q.scale.eq(q.scale[0][0]).all().item<bool>());
          }
          // The packing's padded words must not leak into the codes.
          EXPECT_EQ(codes.size(1), shape.in);
        }
      }
    }
  }
}

TEST(WeightQuant, ZeroPointsStayInRangeForOneSidedAndZeroGroups) {
  // Group 0: all positive (lo clamps to 0 -> zero point qmin); group 1: all negative (hi clamps to 0 ->
  // zero point qmax); group 2: all zero (scale epsilon, exact zeros back); group 3: mixed.
  auto w = torch::cat({torch::rand({3, 8}) + 0.1, -torch::rand({3, 8}) - 0.1, torch::zeros({3, 8}),
                       torch::randn({3, 8})},
                      1);
  for (int bits : {3, 4, 8}) {
    auto q = ptq::quantize_weight(w, spec(bits, 8, false));
    auto zp = q.zero_point.to(torch::kInt32);
    EXPECT_TRUE(zp.select(1, 0).eq(ptq::qmin(bits)).all().item<bool>()) << zp;
    EXPECT_TRUE(zp.select(1, 1).eq(ptq::qmax(bits)).all().item<bool>()) << zp;
    EXPECT_TRUE(zp.ge(ptq::qmin(bits)).all().item<bool>() && zp.le(ptq::qmax(bits)).all().item<bool>());
    EXPECT_TRUE(q.scale.select(1, 2).gt(0).all().item<bool>());
    EXPECT_TRUE(q.dequantize().narrow(1, 16, 8).eq(0).all().item<bool>());
    // Zero is always exactly representable: (zero_point - zero_point) * scale.
    auto zeros_back = ptq::fake_quantize_weight(torch::zeros({2, 16}), spec(bits, 8, false));
    EXPECT_TRUE(zeros_back.eq(0).all().item<bool>());
  }
}

TEST(WeightQuant, PerChannelEqualsOneGroupOfInFeatures) {
  torch::manual_seed(3);
  auto w = torch::randn({12, 72});
  for (int bits : {3, 4, 8}) {
    for (bool sym : {true, false}) {
      auto a = ptq::quantize_weight(w, spec(bits, ptq::kPerChannel, sym));
      auto b = ptq::quantize_weight(w, spec(bits, 72, sym));
      EXPECT_TRUE(torch::equal(a.data, b.data));
      EXPECT_TRUE(torch::equal(a.scale, b.scale));
      if (!sym) {
        EXPECT_TRUE(torch::equal(a.zero_point, b.zero_point));
      }
    }
  }
}

TEST(WeightQuant, ClipRatioShrinksTheRange) {
  torch::manual_seed(4);
  auto w = torch::randn({4, 32});
  auto full = ptq::quantize_weight(w, spec(4, 16, true));
  auto s = spec(4, 16, true);
  s.clip_ratio = 0.5;
  auto half = ptq::quantize_weight(w, s);
  EXPECT_TRUE(torch::allclose(half.scale, full.scale * 0.5));
  // The largest weights now clamp to the ends of the range.
  auto codes = half.unpacked_int8();
  EXPECT_EQ(codes.max().item<int>(), 7);
  EXPECT_EQ(codes.min().item<int>(), -8);
  // Per-group ratios multiply on top, [out, n_groups].
  auto r = torch::ones({4, 2});
  r[1][1] = 0.25;
  s.clip_ratio = 1.0;
  s.clip_ratio_per_group = r;
  auto mixed = ptq::quantize_weight(w, s);
  EXPECT_FLOAT_EQ(mixed.scale[1][1].item<float>(), full.scale[1][1].item<float>() * 0.25f);
  EXPECT_FLOAT_EQ(mixed.scale[0][0].item<float>(), full.scale[0][0].item<float>());
  s.clip_ratio_per_group = torch::ones({3, 2});
  EXPECT_NE(error_of([&] { ptq::quantize_weight(w, s); }).find("[4, 2]"), std::string::npos);
}

TEST(WeightQuant, PrecomputedScalesReproduceTheCodes) {
  torch::manual_seed(5);
  auto w = torch::randn({6, 64});
  for (bool sym : {true, false}) {
    auto q = ptq::quantize_weight(w, spec(4, 32, sym));
    auto s = spec(4, 32, sym);
    s.scale = q.scale;
    s.zero_point = q.zero_point;
    // GPTQ hands over its (already grid-aligned) weight: re-quantizing it gives the same codes.
    auto again = ptq::quantize_weight(q.dequantize(), s);
    EXPECT_TRUE(torch::equal(again.data, q.data));
    EXPECT_TRUE(torch::equal(again.scale, q.scale));
  }
  auto s = spec(4, 32, true);
  s.scale = torch::ones({6, 3});
  const std::string msg = error_of([&] { ptq::quantize_weight(w, s); });
  EXPECT_NE(msg.find("[6, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[6, 2]"), std::string::npos) << msg;
  auto a = spec(4, 32, false);
  a.scale = torch::ones({6, 2});
  EXPECT_NE(error_of([&] { ptq::quantize_weight(w, a); }).find("zero_point"), std::string::npos);
}

TEST(WeightQuant, FakeQuantizeEqualsQuantizeThenDequantize) {
  torch::manual_seed(6);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    auto w = torch::randn({8, 128}).to(dtype);
    for (bool sym : {true, false}) {
      auto s = spec(4, 64, sym);
      auto fake = ptq::fake_quantize_weight(w, s);
      EXPECT_EQ(fake.scalar_type(), dtype);
      EXPECT_TRUE(torch::equal(fake, ptq::quantize_weight(w, s).dequantize(dtype)));
    }
  }
}

TEST(WeightQuant, BytesShapesAndValidation) {
  auto w = torch::randn({16, 256});
  auto q4 = ptq::quantize_weight(w, spec(4, 128, false));
  EXPECT_EQ(q4.data.sizes(), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(q4.weight_bytes(), 16 * 256 / 2 + 16 * 2 * 4 + 16 * 2);
  auto q3 = ptq::quantize_weight(w, spec(3, 128, true));
  EXPECT_EQ(q3.packing, ptq::PackingFormat::kInt3PackedInt32);
  EXPECT_EQ(q3.data.sizes(), (std::vector<int64_t>{16, 26}));  // ceil(256 / 10)
  auto q8 = ptq::quantize_weight(w, spec(8, ptq::kPerChannel, true));
  EXPECT_EQ(q8.weight_bytes(), 16 * 256 + 16 * 4);
  EXPECT_EQ(q4.describe(), "int4 g128 asym int4-packed-int32 [16, 256]");

  auto broken = q4;
  broken.scale = torch::ones({16, 3});
  EXPECT_NE(error_of([&] { broken.validate(); }).find("scale"), std::string::npos);
  broken = q4;
  broken.zero_point = torch::Tensor();
  EXPECT_NE(error_of([&] { broken.validate(); }).find("zero_point"), std::string::npos);
  broken = q4;
  broken.data = broken.data.narrow(1, 0, 31);
  EXPECT_NE(error_of([&] { broken.validate(); }).find("[16, 32]"), std::string::npos);
  EXPECT_NE(error_of([] { ptq::quantize_weight(torch::randn({4}), spec(8, 0, true)); }).find("2-d"),
            std::string::npos);
  EXPECT_NE(error_of([] { ptq::quantize_weight(torch::ones({4, 4}, torch::kInt32), spec(8, 0, true)); })
                .find("float"),
            std::string::npos);
  EXPECT_NE(error_of([] { ptq::quantize_weight(torch::randn({4, 4}), spec(5, 0, true)); }).find("5 bits"),
            std::string::npos);
}

// SQNR of Gaussian weights [256, 4096]. Theory (uniform noise step^2 / 12 against unit variance): int8
// per-channel has step ~ 3.9 sigma / 127.5 -> ~41 dB; int4 g128 step ~ 2.7 sigma / 7.5 -> ~19.6 dB; int3
// g128 ~ 2.7 / 3.5 -> ~13 dB. Measured (LibTorch 1.13 CPU and 2.11 CUDA alike): int8 41.3 / 41.7 dB
// (sym / asym), int4 g128 19.1 / 20.0, int3 g128 12.5 / 13.3, int4 per-channel 16.7. Thresholds sit
// ~1-2 dB below; the exact formulas are pinned by the hand-computed tests above, these catch gross
// errors (lost zero points, clipping by a wrong range, a broken group layout).
TEST(WeightQuant, SqnrOnGaussianWeights) {
  torch::manual_seed(7);
  auto w = torch::randn({256, 4096});
  struct Case {
    int bits;
    int64_t group;
    bool sym;
    double min_db;
  };
  for (const Case& c : {Case{8, ptq::kPerChannel, true, 39.0}, Case{8, ptq::kPerChannel, false, 39.0},
                        Case{4, 128, true, 18.0}, Case{4, 128, false, 18.5}, Case{3, 128, true, 11.5},
                        Case{3, 128, false, 12.0}, Case{4, ptq::kPerChannel, true, 15.5}}) {
    const double db = ptq::tol::sqnr_db(w, ptq::fake_quantize_weight(w, spec(c.bits, c.group, c.sym)));
    std::cout << "  SQNR int" << c.bits << " " << ptq::granularity_name(c.group) << (c.sym ? " sym" : " asym")
              << ": " << db << " dB\n";
    EXPECT_GT(db, c.min_db) << "int" << c.bits << " " << ptq::granularity_name(c.group);
  }
}

// ---- activation quantization -------------------------------------------------------------------------

TEST(ActivationQuant, PerTokenScalesAreRowWise) {
  torch::manual_seed(8);
  auto x = torch::randn({2, 3, 40}) * torch::tensor({1.f, 10.f, 0.01f}).view({1, 3, 1});
  x[1][2].zero_();  // an all-zero token
  auto qa = ptq::quantize_per_token_int8(x);
  ASSERT_EQ(qa.data.sizes(), x.sizes());
  ASSERT_EQ(qa.scale.sizes(), (std::vector<int64_t>{2, 3, 1}));
  EXPECT_FALSE(qa.zero_point.defined());
  auto expected_scale = x.abs().amax(-1, true) / 127.0;
  expected_scale[1][2] = 1.0;  // zero rows get scale 1
  EXPECT_TRUE(torch::equal(qa.scale, expected_scale));
  EXPECT_TRUE(torch::equal(qa.data, (x / qa.scale).round().to(torch::kInt8)));
  EXPECT_EQ(qa.data.abs().max().item<int>(), 127);  // each row's max maps to +-127, never -128
  EXPECT_TRUE(qa.data[1][2].eq(0).all().item<bool>());
  auto err = (qa.dequantize() - x).abs();
  EXPECT_TRUE(err.le(qa.scale * ptq::tol::kHalfStep).all().item<bool>());
  // Rows are independent: quantizing one row alone gives the same codes.
  auto alone = ptq::quantize_per_token_int8(x[0][1].view({1, 40}));
  EXPECT_TRUE(torch::equal(alone.data.view({40}), qa.data[0][1]));
  // bf16 input is computed in float32.
  auto xb = x.to(torch::kBFloat16);
  EXPECT_EQ(ptq::fake_quantize_per_token_int8(xb).scalar_type(), torch::kBFloat16);
}

TEST(ActivationQuant, PerTokenAsymmetric) {
  torch::manual_seed(9);
  auto x = torch::rand({5, 33}) * 4 - 1;  // skewed rows
  auto qa = ptq::quantize_per_token_int8(x, /*symmetric=*/false);
  ASSERT_TRUE(qa.zero_point.defined());
  EXPECT_EQ(qa.zero_point.scalar_type(), torch::kInt32);
  EXPECT_TRUE(qa.zero_point.ge(-128).all().item<bool>() && qa.zero_point.le(127).all().item<bool>());
  auto err = (qa.dequantize() - x).abs();
  EXPECT_TRUE(err.le(qa.scale * ptq::tol::kHalfStep).all().item<bool>());
  // Asymmetric uses the row's actual range: a smaller step than symmetric on skewed data.
  auto sym = ptq::quantize_per_token_int8(x, true);
  EXPECT_TRUE(qa.scale.lt(sym.scale).all().item<bool>());
}

TEST(ActivationQuant, StaticPerTensorClampsOutliersAndHonoursZeroPoint) {
  auto x = floats({-3.f, -1.f, 0.f, 0.5f, 1.f, 100.f}).view({2, 3});
  auto s = torch::tensor(0.02f);
  auto qa = ptq::quantize_per_tensor_int8(x, s);
  EXPECT_EQ(qa.scale.dim(), 0);
  EXPECT_TRUE(torch::equal(qa.data, torch::tensor({-128, -50, 0, 25, 50, 127}, torch::kInt8).view({2, 3})));
  auto qz = ptq::quantize_per_tensor_int8(x, s, torch::tensor(10));
  EXPECT_TRUE(torch::equal(qz.data, torch::tensor({-128, -40, 10, 35, 60, 127}, torch::kInt8).view({2, 3})));
  auto fq = ptq::fake_quantize_per_tensor_int8(x, s, torch::tensor(10));
  EXPECT_FLOAT_EQ(fq[0][1].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(fq[1][2].item<float>(), (127 - 10) * 0.02f);
  EXPECT_NE(error_of([&] { ptq::quantize_per_tensor_int8(x, torch::tensor(0.f)); }).find("positive"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ptq::quantize_per_tensor_int8(x, torch::ones({2})); }).find("one value"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ptq::quantize_per_tensor_int8(x, s, torch::tensor(300)); }).find("300"),
            std::string::npos);
}

TEST(ActivationQuant, StaticParamsFromARange) {
  auto sym = ptq::static_activation_qparams(-2.54, 1.0, true);
  EXPECT_FLOAT_EQ(sym.scale.item<float>(), 2.54f / 127);
  EXPECT_FALSE(sym.zero_point.defined());
  auto asym = ptq::static_activation_qparams(0.0, 2.55, false);
  EXPECT_FLOAT_EQ(asym.scale.item<float>(), 0.01f);
  EXPECT_EQ(asym.zero_point.item<int>(), -128);  // lo = 0 maps to qmin
  auto zero = ptq::static_activation_qparams(0.0, 0.0, true);
  EXPECT_FLOAT_EQ(zero.scale.item<float>(), 1.0f);
}

}  // namespace
