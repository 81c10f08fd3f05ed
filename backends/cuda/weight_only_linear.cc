// One Linear kernel for the weight-only schemes; what differs between int4 and int8 is the repacking and
// the two launchers (a `Format`), everything else (scales and zero points transposed to [G, Npad], the
// decode / prefill split, the checks) is shared.
#include "backends/cuda/weight_only_linear.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAGuard.h>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_glue_util.h"
#include "backends/cuda/kernels/cuda_kernels.h"
#include "backends/cuda/weight_only_repack.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq::cuda {
namespace {

// The decode kernel's limit: two n8 tiles of tokens. Above it the weight is dequantized once per call into
// x's dtype and cuBLAS does the GEMM (a fused low-bit GEMM is future work).
constexpr int64_t kMaxDecodeRows = 16;

// What one code width needs: its packing, its repack, and its launchers (cuda_kernels.h), behind void*.
struct Format {
  const char* label;  // "w4a16", for messages
  int bits;
  PackingFormat packing;
  torch::Tensor (*repack)(const QuantizedWeight&);
  cudaError_t (*decode)(const void* x, int dtype, const void* wq, const float* scales, const int8_t* zeros,
                        const float* bias, void* y, int M, int N, int K, int group_size, cudaStream_t stream);
  cudaError_t (*dequantize)(const void* wq, const float* scales, const int8_t* zeros, void* w, int dtype, int N,
                            int K, int group_size, cudaStream_t stream);
};

const Format kW4A16 = {
    "w4a16", 4, PackingFormat::kInt4PackedInt32, w4a16_repack,
    [](const void* x, int dtype, const void* wq, const float* s, const int8_t* z, const float* b, void* y, int M,
       int N, int K, int g, cudaStream_t st) {
      return launch_w4a16_decode(x, dtype, static_cast<const uint32_t*>(wq), s, z, b, y, M, N, K, g, st);
    },
    [](const void* wq, const float* s, const int8_t* z, void* w, int dtype, int N, int K, int g, cudaStream_t st) {
      return launch_w4a16_dequantize(static_cast<const uint32_t*>(wq), s, z, w, dtype, N, K, g, st);
    }};

const Format kW8A16 = {
    "w8a16", 8, PackingFormat::kInt8Plain, w8a16_repack,
    [](const void* x, int dtype, const void* wq, const float* s, const int8_t* z, const float* b, void* y, int M,
       int N, int K, int g, cudaStream_t st) {
      return launch_w8a16_decode(x, dtype, static_cast<const uint8_t*>(wq), s, z, b, y, M, N, K, g, st);
    },
    [](const void* wq, const float* s, const int8_t* z, void* w, int dtype, int N, int K, int g, cudaStream_t st) {
      return launch_w8a16_dequantize(static_cast<const uint8_t*>(wq), s, z, w, dtype, N, K, g, st);
    }};

class CudaWeightOnlyLinear : public LinearKernel {
 public:
  CudaWeightOnlyLinear(const QuantizedLinearParams& p, const Format& f) : f_(f) {
    p.validate();
    const QuantizedWeight& w = p.weight;
    PTQ_CHECK(w.bits == f.bits && w.packing == f.packing, "cuda {}: weight is {}, expected int{} {}", f.label,
              w.describe(), f.bits, f.bits == 4 ? "packed in int32" : "plain");
    PTQ_CHECK(w.group_size <= 0 || w.group_size % 16 == 0, "cuda {}: group size {} is not a multiple of 16", f.label,
              w.group_size);
    c10::cuda::CUDAGuard guard(w.data.device());
    N_ = w.out_features();
    K_ = w.in_features();
    group_size_ = w.group_size > 0 ? static_cast<int>(w.group_size) : 0;
    scheme_ = p.scheme().name();
    const int64_t n_pad = (N_ + 15) / 16 * 16;
    wq_ = f.repack(w);
    scales_ = torch::constant_pad_nd(w.scale.to(torch::kFloat32), {0, 0, 0, n_pad - N_}, 0).t().contiguous();
    auto z = w.zero_point.defined() ? w.zero_point.to(torch::kInt8) : torch::zeros_like(w.scale, torch::kInt8);
    zeros_ = torch::constant_pad_nd(z, {0, 0, 0, n_pad - N_}, 0).t().contiguous();
    if (p.bias.defined()) {
      bias_ = p.bias;
      bias_f32_ = p.bias.to(w.data.device(), torch::kFloat32).contiguous();
    }
    bytes_ = wq_.numel() * wq_.element_size() + scales_.numel() * 4 + zeros_.numel();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == K_, "cuda {}: input has shape {}, expected [..., {}]",
              f_.label, x.defined() ? x.sizes() : c10::IntArrayRef{}, K_);
    PTQ_CHECK(x.device() == wq_.device(), "cuda {}: input is on {} but the weight is on {}", f_.label,
              x.device().str(), wq_.device().str());
    const int code = dtype_code(x.scalar_type());
    PTQ_CHECK(code >= 0, "cuda {}: input dtype {} is not fp16, bf16 or fp32", f_.label, x.scalar_type());
    c10::cuda::CUDAGuard guard(x.device());
    auto out_shape = x.sizes().vec();
    out_shape.back() = N_;
    auto x2 = x.reshape({-1, K_});
    const int64_t M = x2.size(0);
    if (M >= 1 && M <= kMaxDecodeRows && code != kF32 && K_ % 8 == 0) {
      x2 = x2.contiguous();
      if (reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0) x2 = x2.clone();
      auto y = torch::empty({M, N_}, x2.options());
      PTQ_CUDA_CHECK(f_.decode(x2.data_ptr(), code, wq_.data_ptr(), scales_.data_ptr<float>(),
                               zeros_.data_ptr<int8_t>(), bias_f32_.defined() ? bias_f32_.data_ptr<float>() : nullptr,
                               y.data_ptr(), static_cast<int>(M), static_cast<int>(N_), static_cast<int>(K_),
                               group_size_, stream_of(x2)));
      return y.reshape(out_shape);
    }
    // Prefill: the dense weight in x's dtype, bit for bit QuantizedWeight::dequantize(dtype), then cuBLAS.
    auto w = torch::empty({N_, K_}, x2.options());
    PTQ_CUDA_CHECK(f_.dequantize(wq_.data_ptr(), scales_.data_ptr<float>(), zeros_.data_ptr<int8_t>(), w.data_ptr(),
                                 code, static_cast<int>(N_), static_cast<int>(K_), group_size_, stream_of(x2)));
    auto b = bias_.defined() ? bias_.to(x.scalar_type()) : bias_;
    return torch::linear(x2, w, b).reshape(out_shape);
  }

  std::string name() const override { return "cuda:" + scheme_; }
  int64_t weight_bytes() const override { return bytes_; }

 private:
  const Format& f_;
  int64_t N_ = 0, K_ = 0, bytes_ = 0;
  int group_size_ = 0;
  std::string scheme_;
  torch::Tensor wq_, scales_, zeros_, bias_, bias_f32_;
};

}  // namespace

Support weight_only_supports(const LinearScheme& s) {
  if (s.weight_bits != 4 && s.weight_bits != 8) {
    return Support::no(fmt::format("{}-bit weights have no CUDA kernel", s.weight_bits));
  }
  if (s.group_size > 0 && s.group_size % 16 != 0) {
    return Support::no(fmt::format("group size {} not supported: needs a multiple of 16 (or per-channel, per-tensor)",
                                   s.group_size));
  }
  return Support::yes();
}

std::shared_ptr<LinearKernel> make_weight_only_linear(const QuantizedLinearParams& params) {
  return std::make_shared<CudaWeightOnlyLinear>(params, params.weight.bits == 8 ? kW8A16 : kW4A16);
}

}  // namespace ptq::cuda
