// Repacking (convert time, once): the compressed-tensors weight (int32 words of 8 unsigned codes along the
// in-features) is unpacked to codes q + 8, padded to [Npad = 16 * ceil(N / 16), Kpad = 64 * ceil(K / 64)]
// with the code of 0, and regrouped so that word (row tile rt, column quad Q, lane l, k-tile j) holds the
// lane's mma.m16n8k16 A fragment of the 16 x 16 tile (rows 16 rt.., columns 64 Q + 16 j..):
//   lane l = 4 r + cq covers rows r and r + 8, columns 2 cq, 2 cq + 1, 2 cq + 8, 2 cq + 9 of the tile;
//   nibble p * 4 + c8 * 2 + h holds (row r + 8 h, column 2 cq + 8 c8 + p),
// so that (word >> 4 i) & 0x000F000F puts the pairs of fragment register i in the low bits of each half.
// Scales and zero points are transposed to [G, Npad] (padding rows: scale 0). Bytes resident: 0.5 per
// weight plus 5 per group and row, as the original.
#include "backends/cuda/w4a16_linear.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAGuard.h>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_glue_util.h"
#include "backends/cuda/kernels/cuda_kernels.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq::cuda {
namespace {

// The decode kernel's limit: two n8 tiles of tokens. Above it the weight is dequantized once per call and
// cuBLAS does the GEMM (the first prefill path; a fused int4 GEMM is future work).
constexpr int64_t kMaxDecodeRows = 16;

torch::Tensor repack_codes(const QuantizedWeight& w) {
  const int64_t N = w.out_features(), K = w.in_features();
  const int64_t n_pad = (N + 15) / 16 * 16, k_pad = (K + 63) / 64 * 64;
  auto nib = w.unpacked_int8().to(torch::kInt64) + 8;  // [N, K], unsigned codes
  nib = torch::constant_pad_nd(nib, {0, k_pad - K, 0, n_pad - N}, 8);
  // [RT, h, r, Q, j, c8, cq, p] -> [RT, Q, r, cq, j, p, c8, h]
  nib = nib.reshape({n_pad / 16, 2, 8, k_pad / 64, 4, 2, 4, 2}).permute({0, 3, 2, 6, 4, 7, 5, 1}).reshape({-1, 8});
  auto weights = torch::pow(torch::full({8}, 16, nib.options()), torch::arange(8, nib.options()));  // 16^i
  auto word = (nib * weights).sum(1);  // nibble i at bits 4i..4i+3: [0, 2^32) in int64
  word = torch::where(word >= (int64_t{1} << 31), word - (int64_t{1} << 32), word);
  return word.to(torch::kInt32).contiguous();
}

class CudaW4A16Linear : public LinearKernel {
 public:
  explicit CudaW4A16Linear(const QuantizedLinearParams& p) {
    p.validate();
    const QuantizedWeight& w = p.weight;
    PTQ_CHECK(w.bits == 4 && w.packing == PackingFormat::kInt4PackedInt32,
              "cuda w4a16: weight is {}, expected int4 packed in int32", w.describe());
    PTQ_CHECK(w.group_size <= 0 || w.group_size % 16 == 0, "cuda w4a16: group size {} is not a multiple of 16",
              w.group_size);
    c10::cuda::CUDAGuard guard(w.data.device());
    N_ = w.out_features();
    K_ = w.in_features();
    group_size_ = w.group_size > 0 ? static_cast<int>(w.group_size) : 0;
    scheme_ = p.scheme().name();
    const int64_t n_pad = (N_ + 15) / 16 * 16;
    wq_ = repack_codes(w);
    scales_ = torch::constant_pad_nd(w.scale.to(torch::kFloat32), {0, 0, 0, n_pad - N_}, 0).t().contiguous();
    auto z = w.zero_point.defined() ? w.zero_point.to(torch::kInt8) : torch::zeros_like(w.scale, torch::kInt8);
    zeros_ = torch::constant_pad_nd(z, {0, 0, 0, n_pad - N_}, 0).t().contiguous();
    if (p.bias.defined()) {
      bias_ = p.bias;
      bias_f32_ = p.bias.to(w.data.device(), torch::kFloat32).contiguous();
    }
    bytes_ = wq_.numel() * 4 + scales_.numel() * 4 + zeros_.numel();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    PTQ_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == K_, "cuda w4a16: input has shape {}, expected [..., {}]",
              x.defined() ? x.sizes() : c10::IntArrayRef{}, K_);
    PTQ_CHECK(x.device() == wq_.device(), "cuda w4a16: input is on {} but the weight is on {}", x.device().str(),
              wq_.device().str());
    const int code = dtype_code(x.scalar_type());
    PTQ_CHECK(code >= 0, "cuda w4a16: input dtype {} is not fp16, bf16 or fp32", x.scalar_type());
    c10::cuda::CUDAGuard guard(x.device());
    auto out_shape = x.sizes().vec();
    out_shape.back() = N_;
    auto x2 = x.reshape({-1, K_});
    const int64_t M = x2.size(0);
    if (M >= 1 && M <= kMaxDecodeRows && code != kF32 && K_ % 8 == 0) {
      x2 = x2.contiguous();
      if (reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0) x2 = x2.clone();
      auto y = torch::empty({M, N_}, x2.options());
      PTQ_CUDA_CHECK(launch_w4a16_decode(x2.data_ptr(), code, reinterpret_cast<const uint32_t*>(wq_.data_ptr()),
                                         scales_.data_ptr<float>(), zeros_.data_ptr<int8_t>(),
                                         bias_f32_.defined() ? bias_f32_.data_ptr<float>() : nullptr, y.data_ptr(),
                                         static_cast<int>(M), static_cast<int>(N_), static_cast<int>(K_), group_size_,
                                         stream_of(x2)));
      return y.reshape(out_shape);
    }
    // Prefill: the dense weight in x's dtype, bit for bit QuantizedWeight::dequantize(dtype), then cuBLAS.
    auto w = torch::empty({N_, K_}, x2.options());
    PTQ_CUDA_CHECK(launch_w4a16_dequantize(reinterpret_cast<const uint32_t*>(wq_.data_ptr()),
                                           scales_.data_ptr<float>(), zeros_.data_ptr<int8_t>(), w.data_ptr(), code,
                                           static_cast<int>(N_), static_cast<int>(K_), group_size_, stream_of(x2)));
    auto b = bias_.defined() ? bias_.to(x.scalar_type()) : bias_;
    return torch::linear(x2, w, b).reshape(out_shape);
  }

  std::string name() const override { return "cuda:" + scheme_; }
  int64_t weight_bytes() const override { return bytes_; }

 private:
  int64_t N_ = 0, K_ = 0, bytes_ = 0;
  int group_size_ = 0;
  std::string scheme_;
  torch::Tensor wq_, scales_, zeros_, bias_, bias_f32_;
};

}  // namespace

Support w4a16_supports(const LinearScheme& s) {
  if (s.weight_bits == 8) return Support::no("W8A16 has no CUDA kernel yet (issue 7): only W4A16 and W8A8");
  if (s.weight_bits != 4) return Support::no(fmt::format("{}-bit weights have no CUDA kernel", s.weight_bits));
  if (s.group_size > 0 && s.group_size % 16 != 0) {
    return Support::no(fmt::format("group size {} not supported: needs a multiple of 16 (or per-channel, per-tensor)",
                                   s.group_size));
  }
  return Support::yes();
}

std::shared_ptr<LinearKernel> make_w4a16_linear(const QuantizedLinearParams& params) {
  return std::make_shared<CudaW4A16Linear>(params);
}

}  // namespace ptq::cuda
