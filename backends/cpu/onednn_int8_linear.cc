#include "backends/cpu/onednn_int8_linear.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "backends/cpu/activation_quant_cpu.h"
#include "backends/cpu/onednn_check.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq::cpu {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// The M the weight layout is chosen for. oneDNN's brgemm matmul picks the same blocked weight layout for
// every M we measured (1 .. 512), so one packed copy serves all; primitives for other M are created with
// this exact layout.
constexpr int64_t kPackM = 128;
// Prefill lengths vary; the cache is cleared when it grows past this many shapes (creation costs ~1 ms).
constexpr size_t kMaxCachedShapes = 64;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

class OneDnnInt8Linear : public LinearKernel {
 public:
  explicit OneDnnInt8Linear(const QuantizedLinearParams& p)
      : scheme_(p.scheme()), K_(p.weight.in_features()), N_(p.weight.out_features()) {
    const QuantizedWeight& w = p.weight;
    auto codes = w.unpacked_int8().to(torch::kCPU).contiguous();  // [N, K] = the K x N matmul weight, "ba"
    code_sum_ = codes.to(torch::kInt32).sum(1).to(torch::kInt32).contiguous();
    weight_scale_ = w.scale.to(torch::kCPU, torch::kFloat32).reshape({N_}).contiguous();
    if (w.zero_point.defined()) weight_zero_ = w.zero_point.to(torch::kCPU, torch::kInt32).reshape({N_}).contiguous();
    if (p.bias.defined()) bias_ = p.bias.to(torch::kCPU, torch::kFloat32).contiguous();
    act_ = p.act;
    act_symmetric_ = p.act_symmetric;
    if (act_ == ActQuant::kInt8PerTensorStatic) {
      input_scale_ = p.input_scale.to(torch::kFloat32).item<float>();
      input_zero_ = p.input_zero_point.defined() ? static_cast<int32_t>(p.input_zero_point.item<double>()) : 0;
    }

    // Prepack: let a representative primitive choose the layout, reorder into it once.
    auto pd = choose_packed_layout();
    packed_desc_ = pd.weights_desc();
    implementation_ = pd.impl_info_str();
    dnnl::engine& engine = cpu_engine();
    memory plain({{K_, N_}, dt::s8, tag::ba}, engine, codes.data_ptr());
    packed_ = PTQ_DNNL(memory(packed_desc_, engine));
    dnnl::stream stream(engine);
    PTQ_DNNL(dnnl::reorder(plain, packed_).execute(stream, plain, packed_));
    stream.wait();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == K_, "{}: input has shape {}, expected [..., {}]", name(),
              x.defined() ? x.sizes() : c10::IntArrayRef{}, K_);
    PTQ_CHECK(x.device().is_cpu() && torch::isFloatingType(x.scalar_type()),
              "{}: input must be a float tensor on the CPU, got {} on {}", name(), x.scalar_type(), x.device().str());
    auto x2 = x.reshape({-1, K_}).to(torch::kFloat32).contiguous();
    const int64_t M = x2.size(0);
    auto shape = x.sizes().vec();
    shape.back() = N_;
    if (M == 0) return torch::empty(shape, x.options());

    // 1. Quantize the activations (codes, scales, zero points; code sums when the weight has zero points).
    const bool per_token = act_ == ActQuant::kInt8PerTokenDynamic;
    auto codes = torch::empty({M, K_}, torch::kInt8);
    auto sx = torch::empty({per_token ? M : 1}, torch::kFloat32);
    auto zx = torch::empty({per_token ? M : 1}, torch::kInt32);
    torch::Tensor xsum;
    if (weight_zero_.defined()) xsum = torch::empty({M}, torch::kInt32);
    RowQuantOutput out{codes.data_ptr<int8_t>(), sx.data_ptr<float>(), zx.data_ptr<int32_t>(),
                       xsum.defined() ? xsum.data_ptr<int32_t>() : nullptr};
    if (per_token) {
      quantize_rows_per_token(x2.data_ptr<float>(), M, K_, act_symmetric_, out);
    } else {
      quantize_rows_static(x2.data_ptr<float>(), M, K_, input_scale_, input_zero_, out);
    }

    // 2. Raw integer product on oneDNN.
    auto acc = torch::empty({M, N_}, torch::kInt32);
    {
      dnnl::engine& engine = cpu_engine();
      memory src({{M, K_}, dt::s8, tag::ab}, engine, codes.data_ptr());
      memory dst({{M, N_}, dt::s32, tag::ab}, engine, acc.data_ptr());
      dnnl::stream stream(engine);
      PTQ_DNNL(primitive_for(M).execute(
          stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed_}, {DNNL_ARG_DST, dst}}));
      stream.wait();
    }

    // 3. Zero-point corrections, scales and bias in one pass.
    auto y = torch::empty({M, N_}, torch::kFloat32);
    epilogue(acc.data_ptr<int32_t>(), M, per_token, sx.data_ptr<float>(), zx.data_ptr<int32_t>(),
             xsum.defined() ? xsum.data_ptr<int32_t>() : nullptr, y.data_ptr<float>());
    return y.to(x.scalar_type()).reshape(shape);
  }

  std::string name() const override { return "cpu:" + scheme_.name() + "-onednn[" + implementation_ + "]"; }
  int64_t weight_bytes() const override {
    return static_cast<int64_t>(packed_desc_.get_size()) + N_ * 4 * (2 + (weight_zero_.defined() ? 1 : 0));
  }

 private:
  dnnl::matmul::primitive_desc make_pd(int64_t M, const memory::desc& weights) const {
    memory::desc src({M, K_}, dt::s8, tag::ab), dst({M, N_}, dt::s32, tag::ab);
    return PTQ_DNNL(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), cpu_engine()));
  }

  static bool is_reference_implementation(const dnnl::matmul::primitive_desc& pd) {
    return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  }

  // One packed copy serves every M, so its layout must suit every M. The layout oneDNN picks for kPackM
  // rows usually does, but not always: with K = 2048, N = 256 (a GQA k/v projection of TinyLlama) M = 1
  // falls to ref_int8 with it, 13 ms per call instead of 0.05 ms, which made W8A8 decode slower than
  // float. The layout picked for one row works there for every M, so it is the second candidate.
  dnnl::matmul::primitive_desc choose_packed_layout() const {
    std::optional<dnnl::matmul::primitive_desc> first;
    for (int64_t pack_m : {kPackM, int64_t{1}}) {
      auto pd = make_pd(pack_m, memory::desc({K_, N_}, dt::s8, tag::any));
      if (!first) first = pd;
      bool all_fast = !is_reference_implementation(pd);
      for (int64_t probe_m : {int64_t{1}, int64_t{2}, int64_t{16}, kPackM}) {
        all_fast = all_fast && !is_reference_implementation(make_pd(probe_m, pd.weights_desc()));
      }
      if (all_fast) return pd;
    }
    return *first;  // no layout avoids ref_ everywhere: keep the big-M one; primitive_for() says so per M
  }

  dnnl::matmul primitive_for(int64_t M) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(M);
    if (it != cache_.end()) return it->second;
    if (cache_.size() >= kMaxCachedShapes) cache_.clear();
    auto pd = make_pd(M, packed_desc_);
    if (is_reference_implementation(pd) && !warned_reference_) {
      warned_reference_ = true;
      log_warning("{}: oneDNN runs {} x {} x {} on its reference implementation {} (slow)", name(), M, K_, N_,
                  pd.impl_info_str());
    }
    dnnl::matmul prim = PTQ_DNNL(dnnl::matmul(pd));
    cache_.emplace(M, prim);
    return prim;
  }

 public:
  // The oneDNN implementation that runs M rows, e.g. brg:avx512_core_amx_int8 (tests, reports).
  std::string implementation_for_rows(int64_t M) const { return make_pd(M, packed_desc_).impl_info_str(); }

 private:

  // y[m, n] = float(acc') * sx[m] * sw[n] + bias[n] with acc' the zero-point-corrected accumulator.
  void epilogue(const int32_t* acc, int64_t M, bool per_token, const float* sx, const int32_t* zx,
                const int32_t* xsum, float* y) const {
    const float* sw = weight_scale_.data_ptr<float>();
    const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    const int32_t* zw = weight_zero_.defined() ? weight_zero_.data_ptr<int32_t>() : nullptr;
    const int32_t* wsum = code_sum_.data_ptr<int32_t>();
    const int64_t N = N_, K = K_;
    at::parallel_for(0, M * N, 16384, [&](int64_t i0, int64_t i1) {
      while (i0 < i1) {
        const int64_t m = i0 / N, n0 = i0 % N, n1 = std::min(N, n0 + (i1 - i0));
        const float s = per_token ? sx[m] : sx[0];
        const int64_t z = per_token ? zx[m] : zx[0];
        const int32_t* a = acc + m * N;
        float* out = y + m * N;
        if (z == 0 && zw == nullptr) {
          for (int64_t n = n0; n < n1; ++n) out[n] = static_cast<float>(a[n]) * s * sw[n];
        } else {
          const int64_t xs = xsum ? xsum[m] : 0;
          for (int64_t n = n0; n < n1; ++n) {
            int64_t v = int64_t{a[n]} - z * wsum[n];
            if (zw) v += -int64_t{zw[n]} * xs + K * z * zw[n];
            out[n] = static_cast<float>(static_cast<int32_t>(v)) * s * sw[n];
          }
        }
        if (bias) {
          for (int64_t n = n0; n < n1; ++n) out[n] += bias[n];
        }
        i0 += n1 - n0;
      }
    });
  }

  LinearScheme scheme_;
  int64_t K_, N_;
  ActQuant act_ = ActQuant::kInt8PerTokenDynamic;
  bool act_symmetric_ = true;
  float input_scale_ = 1.0f;
  int32_t input_zero_ = 0;
  torch::Tensor code_sum_;      // int32 [N]: sum_k qw[n, k], for activation zero points
  torch::Tensor weight_scale_;  // float [N]
  torch::Tensor weight_zero_;   // int32 [N] or undefined
  torch::Tensor bias_;          // float [N] or undefined
  memory::desc packed_desc_;
  memory packed_;
  std::string implementation_;  // oneDNN's name for the kPackM primitive, e.g. brg:avx512_core_amx_int8
  std::mutex mutex_;
  std::unordered_map<int64_t, dnnl::matmul> cache_;
  bool warned_reference_ = false;
};

}  // namespace

Support int8_linear_supports(const LinearScheme& s) {
  if (s.act == ActQuant::kNone) return Support::no("the oneDNN int8 kernel needs int8 activations");
  if (s.weight_bits != 8) {
    return Support::no(fmt::format("int8 activations need int8 weights, got {}-bit", s.weight_bits));
  }
  if (s.group_size > 0) {
    return Support::no(fmt::format("int8 activations need per-channel or per-tensor weights, got group size {}",
                                   s.group_size));
  }
  return Support::yes();
}

std::string onednn_int8_implementation(const LinearKernel& kernel, int64_t rows) {
  const auto* onednn = dynamic_cast<const OneDnnInt8Linear*>(&kernel);
  PTQ_CHECK(onednn != nullptr, "{} is not a oneDNN int8 kernel", kernel.name());
  return onednn->implementation_for_rows(rows);
}

std::shared_ptr<LinearKernel> make_onednn_int8_linear(const QuantizedLinearParams& params) {
  params.validate();
  const Support s = int8_linear_supports(params.scheme());
  PTQ_CHECK(s.ok, "cpu backend: no int8 kernel for {}: {}", params.scheme().name(), s.reason);
  return std::make_shared<OneDnnInt8Linear>(params);
}

}  // namespace ptq::cpu
