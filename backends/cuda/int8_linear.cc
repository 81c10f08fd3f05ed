// W8A8 forward, per call: quantize x (one kernel; per-token scales, or the calibrated static scale), int8
// GEMM into int32 on cuBLASLt, then one epilogue kernel. Outputs equal the reference int8 linear bit for
// bit (same codes, exact integer accumulation, the reference's float32 epilogue order).
// Asymmetric activations cost nothing extra in the GEMM: (qx - zx) . qw = qx . qw - zx * sum_k qw, and the
// weight's row sums are computed here once. Asymmetric weights would need the activations' row sums too;
// they are declined (compressed-tensors W8A8 checkpoints use symmetric weights).
#include "backends/cuda/int8_linear.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAGuard.h>

#include "backends/cuda/cublaslt_int8.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_glue_util.h"
#include "backends/cuda/kernels/cuda_kernels.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq::cuda {
namespace {

class CudaInt8Linear : public LinearKernel {
 public:
  explicit CudaInt8Linear(QuantizedLinearParams p) : params_(std::move(p)) {
    params_.validate();
    const QuantizedWeight& w = params_.weight;
    PTQ_CHECK(w.bits == 8 && w.symmetric && (w.group_size == kPerChannel || w.group_size == kPerTensor),
              "cuda w8a8: weight is {}, expected symmetric int8 per-channel or per-tensor", w.describe());
    c10::cuda::CUDAGuard guard(w.data.device());
    const auto dev = w.data.device();
    N_ = w.out_features();
    K_ = w.in_features();
    // cuBLASLt's int8 kernels want K and N multiples of 4: zero rows and columns pad the weight (a zero
    // weight adds nothing to any sum, and the extra outputs are cut off).
    N_pad_ = (N_ + 3) / 4 * 4;
    K_pad_ = (K_ + 3) / 4 * 4;
    qw_ = torch::constant_pad_nd(w.data, {0, K_pad_ - K_, 0, N_pad_ - N_}, 0).contiguous();
    sw_ = torch::constant_pad_nd(w.scale.to(torch::kFloat32).reshape({N_}), {0, N_pad_ - N_}, 0).contiguous();
    wsum_ = qw_.to(torch::kInt32).sum(1).to(torch::kInt32).contiguous();
    if (params_.bias.defined()) {
      bias_ = torch::constant_pad_nd(params_.bias.to(dev, torch::kFloat32), {0, N_pad_ - N_}, 0).contiguous();
    }
    if (params_.act == ActQuant::kInt8PerTensorStatic) {
      in_scale_ = params_.input_scale.to(dev, torch::kFloat32).reshape({1}).contiguous();
      if (params_.input_zero_point.defined()) {
        in_zero_ = params_.input_zero_point.to(dev, torch::kInt32).reshape({1}).contiguous();
      }
    }
    scheme_ = params_.scheme().name();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == K_, "cuda w8a8: input has shape {}, expected [..., {}]",
              x.defined() ? x.sizes() : c10::IntArrayRef{}, K_);
    PTQ_CHECK(x.device() == qw_.device(), "cuda w8a8: input is on {} but the weight is on {}", x.device().str(),
              qw_.device().str());
    const int code = dtype_code(x.scalar_type());
    PTQ_CHECK(code >= 0, "cuda w8a8: input dtype {} is not fp16, bf16 or fp32", x.scalar_type());
    c10::cuda::CUDAGuard guard(x.device());
    auto out_shape = x.sizes().vec();
    out_shape.back() = N_;
    auto x2 = x.reshape({-1, K_}).contiguous();
    const int64_t M = x2.size(0);
    if (M == 0) return torch::empty(out_shape, x2.options());
    auto y = torch::empty({M, N_pad_}, x2.options());
    const cudaStream_t stream = stream_of(x2);
    auto q = torch::empty({M, K_}, x2.options().dtype(torch::kInt8));
    torch::Tensor sx, zx;
    int x_stride = 1;
    if (params_.act == ActQuant::kInt8PerTokenDynamic) {
      sx = torch::empty({M}, x2.options().dtype(torch::kFloat32));
      if (!params_.act_symmetric) zx = torch::empty({M}, x2.options().dtype(torch::kInt32));
      PTQ_CUDA_CHECK(launch_quantize_per_token_int8(x2.data_ptr(), code, static_cast<int>(M), static_cast<int>(K_),
                                                    params_.act_symmetric, q.data_ptr<int8_t>(), sx.data_ptr<float>(),
                                                    zx.defined() ? zx.data_ptr<int32_t>() : nullptr, stream));
    } else {
      sx = in_scale_;
      zx = in_zero_;
      x_stride = 0;
      PTQ_CUDA_CHECK(launch_quantize_per_tensor_int8(x2.data_ptr(), code, x2.numel(), sx.data_ptr<float>(),
                                                     zx.defined() ? zx.data_ptr<int32_t>() : nullptr,
                                                     q.data_ptr<int8_t>(), stream));
    }
    if (K_pad_ != K_) q = torch::constant_pad_nd(q, {0, K_pad_ - K_}, 0);
    auto acc = torch::empty({M, N_pad_}, x2.options().dtype(torch::kInt32));
    auto workspace = torch::empty({static_cast<int64_t>(kCublasLtWorkspaceBytes)}, x2.options().dtype(torch::kUInt8));
    int8_gemm_s32(q.data_ptr<int8_t>(), qw_.data_ptr<int8_t>(), acc.data_ptr<int32_t>(), static_cast<int>(M),
                  static_cast<int>(N_pad_), static_cast<int>(K_pad_), workspace.data_ptr(), kCublasLtWorkspaceBytes, stream);
    PTQ_CUDA_CHECK(launch_int8_epilogue(acc.data_ptr<int32_t>(), sx.data_ptr<float>(),
                                        zx.defined() ? zx.data_ptr<int32_t>() : nullptr, x_stride, sw_.data_ptr<float>(),
                                        wsum_.data_ptr<int32_t>(), bias_.defined() ? bias_.data_ptr<float>() : nullptr,
                                        y.data_ptr(), code, static_cast<int>(M), static_cast<int>(N_pad_), stream));
    if (N_pad_ != N_) y = y.narrow(1, 0, N_).contiguous();
    return y.reshape(out_shape);
  }

  std::string name() const override { return "cuda:" + scheme_ + "-cublaslt"; }
  int64_t weight_bytes() const override { return params_.weight.weight_bytes(); }

 private:
  QuantizedLinearParams params_;
  int64_t N_ = 0, K_ = 0, N_pad_ = 0, K_pad_ = 0;
  std::string scheme_;
  torch::Tensor qw_, sw_, wsum_, bias_, in_scale_, in_zero_;
};

}  // namespace

Support int8_linear_supports(const LinearScheme& s) {
  if (s.weight_bits != 8) {
    return Support::no(fmt::format("int8 activations need int8 weights on cuda, got {}-bit", s.weight_bits));
  }
  if (s.group_size != kPerChannel && s.group_size != kPerTensor) {
    return Support::no(fmt::format("W8A8 needs per-channel or per-tensor weights, got group size {}", s.group_size));
  }
  if (!s.weight_symmetric) return Support::no("W8A8 with asymmetric int8 weights has no CUDA kernel");
  return Support::yes();
}

std::shared_ptr<LinearKernel> make_int8_linear(const QuantizedLinearParams& params) {
  return std::make_shared<CudaInt8Linear>(params);
}

}  // namespace ptq::cuda
