#include "backends/cpu/weight_only_linear.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/weight_only_avx512.h"
#include "backends/cpu/tiling.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq::cpu {
namespace {

constexpr int64_t kSuper = 128;      // the packed layout pads K to whole 128-column superblocks
constexpr int64_t kGroupQuantum = 16;  // groups must be whole 16-column chunks
// Default of weight_only_small_m_limit(): no limit. Measured on this machine (docs/PERFORMANCE.md), the
// AVX-512 kernel beats dequantize + torch::linear (OpenBLAS) at every M up to 512.
constexpr int64_t kSmallMLimit = std::numeric_limits<int64_t>::max();

// compressed-tensors int4 words [N, ceil(K / 8)] (column c: word c / 8, nibble c % 8, stored unsigned q + 8)
// -> the layout of weight_only_avx512.h as int32 words [N, Kp / 8]: word i of superblock b holds column
// 128 b + 16 j + i in nibble j. Padded columns stay 0. A plain loop: torch ops on [N, K] int64 views took
// ~100 ms per 1M weights, the loop ~1 ms.
torch::Tensor repack_int4(const torch::Tensor& packed, int64_t K, int64_t Kp) {
  auto src = packed.to(torch::kCPU).contiguous();
  const int64_t N = src.size(0), W = src.size(1);
  auto dst = torch::zeros({N, Kp / 8}, torch::kInt32);
  const auto* s = reinterpret_cast<const uint32_t*>(src.data_ptr<int32_t>());
  auto* d = reinterpret_cast<uint32_t*>(dst.data_ptr<int32_t>());
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const uint32_t* in = s + n * W;
      uint32_t* out = d + n * (Kp / 8);
      for (int64_t c = 0; c < K; ++c) {
        const uint32_t u = (in[c / 8] >> (4 * (c % 8))) & 15u;
        out[c / kSuper * 16 + c % 16] |= u << (4 * ((c % kSuper) / 16));
      }
    }
  });
  return dst;
}

class WeightOnlyLinear : public LinearKernel {
 public:
  explicit WeightOnlyLinear(const QuantizedLinearParams& p) : scheme_(p.scheme()) {
    const QuantizedWeight& w = p.weight;
    N_ = w.out_features();
    K_ = w.in_features();
    const int bits = w.bits;
    const int64_t Kp = round_up(K_, kSuper);
    const bool per_group = w.group_size > 0;
    const int64_t group = per_group ? w.group_size : Kp;
    const int64_t G = w.n_groups(), Gp = per_group ? (Kp + group - 1) / group : 1;

    auto zero = torch::zeros({N_, G}, torch::kInt32);
    if (w.zero_point.defined()) zero.copy_(w.zero_point.to(torch::kCPU));
    if (bits == 4) {
      PTQ_CHECK(w.packing == PackingFormat::kInt4PackedInt32, "{}: int4 weight has packing {}, expected {}", name(),
                to_string(w.packing), to_string(PackingFormat::kInt4PackedInt32));
      codes_ = repack_int4(w.data, K_, Kp);
      zero = zero + 8;  // codes are stored unsigned (q + 8); the zero point moves with them
    } else {
      codes_ = torch::zeros({N_, Kp}, torch::kInt8);
      codes_.narrow(1, 0, K_).copy_(w.unpacked_int8().to(torch::kCPU));
    }
    scale_ = torch::zeros({N_, Gp}, torch::kFloat32);
    scale_.narrow(1, 0, G).copy_(w.scale.to(torch::kCPU));
    zero_ = torch::zeros({N_, Gp}, torch::kInt32);
    zero_.narrow(1, 0, G).copy_(zero);
    if (p.bias.defined()) bias_ = p.bias.to(torch::kCPU, torch::kFloat32).contiguous();

    view_.bits = bits;
    view_.N = N_;
    view_.Kp = Kp;
    view_.group = group;
    view_.Gp = Gp;
    view_.codes = static_cast<const uint8_t*>(codes_.data_ptr());
    view_.scale = scale_.data_ptr<float>();
    view_.zero = zero_.data_ptr<int32_t>();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == K_, "{}: input has shape {}, expected [..., {}]", name(),
              x.defined() ? x.sizes() : c10::IntArrayRef{}, K_);
    PTQ_CHECK(x.device().is_cpu() && torch::isFloatingType(x.scalar_type()),
              "{}: input must be a float tensor on the CPU, got {} on {}", name(), x.scalar_type(), x.device().str());
    auto x2 = x.reshape({-1, K_}).to(torch::kFloat32);
    const int64_t M = x2.size(0), Kp = view_.Kp;
    // Zero-padded to Kp: padded columns then contribute nothing (weight_only_avx512.h).
    torch::Tensor xp = x2.contiguous();
    if (Kp != K_) {
      xp = torch::zeros({M, Kp}, torch::kFloat32);
      xp.narrow(1, 0, K_).copy_(x2);
    }
    torch::Tensor y;
    if (M <= small_m_limit_) {
      y = torch::empty({M, N_}, torch::kFloat32);
      const float* xs = xp.data_ptr<float>();
      float* ys = y.data_ptr<float>();
      // Blocks of 4 rows (the kernel's tile); ~64 rows per task keeps the hand-off cost negligible.
      const int64_t blocks = (N_ + 3) / 4;
      at::parallel_for(0, blocks, 16, [&](int64_t b0, int64_t b1) {
        weight_only_gemm_avx512(view_, xs, M, ys, N_, 4 * b0, std::min(N_, 4 * b1));
      });
      if (bias_.defined()) y.add_(bias_);
    } else {
      auto w = torch::empty({N_, Kp}, torch::kFloat32);
      float* ws = w.data_ptr<float>();
      at::parallel_for(0, N_, 16, [&](int64_t n0, int64_t n1) { weight_only_dequantize_avx512(view_, ws, Kp, n0, n1); });
      y = torch::linear(xp, w, bias_);
    }
    auto shape = x.sizes().vec();
    shape.back() = N_;
    return y.to(x.scalar_type()).reshape(shape);
  }

  std::string name() const override { return "cpu:" + scheme_.name() + "-avx512"; }
  int64_t weight_bytes() const override {
    auto bytes = [](const torch::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; };
    return bytes(codes_) + bytes(scale_) + bytes(zero_);
  }

 private:
  LinearScheme scheme_;
  int64_t N_ = 0, K_ = 0;
  torch::Tensor codes_, scale_, zero_, bias_;  // own the memory view_ points into
  PackedWeightView view_;
  int64_t small_m_limit_ = weight_only_small_m_limit();
};

}  // namespace

Support weight_only_supports(const LinearScheme& s) {
  if (s.act != ActQuant::kNone) return Support::no("weight-only kernels take float activations");
  if (s.weight_bits != 8 && s.weight_bits != 4) {
    return Support::no(fmt::format("{}-bit weights: the AVX-512 kernels handle 8 and 4 bits", s.weight_bits));
  }
  if (s.group_size > 0 && s.group_size % kGroupQuantum != 0) {
    return Support::no(fmt::format("group size {} is not a multiple of {} (the AVX-512 kernels dequantize 16 "
                                   "columns at a time with one scale)",
                                   s.group_size, kGroupQuantum));
  }
  if (!has_avx512()) return Support::no("this CPU lacks AVX-512 (F, BW, VL, DQ) for the weight-only kernels");
  return Support::yes();
}

std::shared_ptr<LinearKernel> make_weight_only_linear(const QuantizedLinearParams& params) {
  params.validate();
  const Support s = weight_only_supports(params.scheme());
  PTQ_CHECK(s.ok, "cpu backend: no weight-only kernel for {}: {}", params.scheme().name(), s.reason);
  return std::make_shared<WeightOnlyLinear>(params);
}

int64_t weight_only_small_m_limit() {
  // PTQ_CPU_SMALL_M overrides the default, for measuring the crossover (bench/cpu_kernel_report).
  static const int64_t limit = [] {
    const char* env = std::getenv("PTQ_CPU_SMALL_M");
    return env && *env ? std::max<int64_t>(0, std::atoll(env)) : kSmallMLimit;
  }();
  return limit;
}

}  // namespace ptq::cpu
