#include "backends/cuda/kv_cache_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <atomic>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_glue_util.h"
#include "backends/cuda/kernels/kv_attention.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq::cuda {

Support int8_kv_attention_supports(const KVQuantParams& params) {
  if (!torch::cuda::is_available())
    return Support::no(fmt::format("int8 KV-cache attention ({}) needs a CUDA device; none is visible to LibTorch",
                                   params.to_string()));
  return Support::yes();
}

CudaInt8KVCache::CudaInt8KVCache(const KVCacheShape& shape, const KVQuantParams& params) : Int8KVCache(shape, params) {
  PTQ_CHECK(shape.device.is_cuda(), "cuda int8 KV cache: device {} is not a CUDA device", shape.device.str());
}

bool CudaInt8KVCache::uses_kernel(int64_t rows_per_kv_head, torch::ScalarType dtype) const {
  return kv_decode_supports_head_dim(static_cast<int>(shape().head_dim)) && rows_per_kv_head >= 1 &&
         rows_per_kv_head <= kCudaKVMaxKernelRows && dtype_code(dtype) >= 0 && length() <= kKVDecodeMaxPositions;
}

torch::Tensor CudaInt8KVCache::attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const {
  const KVCacheShape& sh = shape();
  const int64_t B = sh.batch, Hkv = sh.kv_heads, D = sh.head_dim, S = length();
  PTQ_CHECK(q.dim() == 4 && q.size(0) == B && q.size(3) == D && q.size(1) % Hkv == 0,
            "cuda int8 KV attention: q has shape {}, expected [{}, H, T, {}] with H a multiple of {} KV heads",
            q.sizes(), B, D, Hkv);
  PTQ_CHECK(q.device() == sh.device, "cuda int8 KV attention: q is on {}, the cache on {}", q.device().str(),
            sh.device.str());
  const int64_t H = q.size(1), T = q.size(2);
  if (allowed.defined())
    PTQ_CHECK(allowed.dim() == 3 && allowed.size(0) == B && allowed.size(1) == T && allowed.size(2) == S,
              "cuda int8 KV attention: allowed has shape {}, expected [{}, {}, {}]", allowed.sizes(), B, T, S);
  // Empty inputs and long prefills: the reference path (see the header).
  if (T == 0 || S == 0 || !uses_kernel((H / Hkv) * T, q.scalar_type())) {
    static std::atomic<bool> logged{false};
    if (!kv_decode_supports_head_dim(static_cast<int>(D)) && !logged.exchange(true))
      log_warning("cuda int8 KV attention: head_dim {} has no kernel (64 or 128); dequantizing the cache instead",
                  D);
    return Int8KVCache::attend(q, allowed, scale);
  }

  c10::cuda::CUDAGuard guard(sh.device);
  // The kernel reads q with 16-byte loads: a contiguous view at an odd offset is copied.
  torch::Tensor qc = q.contiguous();
  if (reinterpret_cast<uintptr_t>(qc.data_ptr()) % 16 != 0) qc = qc.clone();
  auto out = torch::empty_like(qc);
  const torch::Tensor kc = key_codes(), vc = value_codes();
  const torch::Tensor ks = key_scales(), vs = value_scales();
  // The kernel indexes the buffers as [B, Hkv, capacity, D] with one (b, head) stride (kv_attention.h).
  PTQ_CHECK(kc.stride(3) == 1 && kc.stride(2) == D && kc.stride(0) == Hkv * kc.stride(1) && vc.strides() == kc.strides(),
            "cuda int8 KV attention: code buffers have strides {} / {}, expected [Hkv * C * D, C * D, D, 1]",
            kc.strides(), vc.strides());
  torch::Tensor mask;
  if (allowed.defined()) mask = allowed.to(sh.device, torch::kBool).contiguous();

  KVDecodeArgs a;
  a.q = qc.data_ptr();
  a.out = out.data_ptr();
  a.dtype = dtype_code(q.scalar_type());
  a.batch = static_cast<int>(B);
  a.heads = static_cast<int>(H);
  a.kv_heads = static_cast<int>(Hkv);
  a.tokens = static_cast<int>(T);
  a.head_dim = static_cast<int>(D);
  a.length = static_cast<int>(S);
  a.k_codes = kc.data_ptr<int8_t>();
  a.v_codes = vc.data_ptr<int8_t>();
  a.bh_stride = kc.stride(1);
  if (mode() == KVQuantMode::kDynamicPerToken) {
    PTQ_CHECK(ks.stride(2) == 1 && ks.stride(0) == Hkv * ks.stride(1) && vs.strides() == ks.strides(),
              "cuda int8 KV attention: per-token scales have strides {} / {}, expected [Hkv * C, C, 1]", ks.strides(),
              vs.strides());
    a.k_token_scale = ks.data_ptr<float>();
    a.v_token_scale = vs.data_ptr<float>();
    a.scale_bh_stride = ks.stride(1);
  } else {
    PTQ_CHECK(ks.is_contiguous() && vs.is_contiguous() && ks.numel() == Hkv * D,
              "cuda int8 KV attention: static scales must be contiguous float32 [{}, {}], got {}", Hkv, D, ks.sizes());
    a.k_channel_scale = ks.data_ptr<float>();
    a.v_channel_scale = vs.data_ptr<float>();
  }
  a.allowed = mask.defined() ? reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>()) : nullptr;
  a.scale = static_cast<float>(scale);

  const KVDecodePlan plan = kv_decode_plan(a);
  auto workspace = torch::empty({plan.workspace_floats}, qc.options().dtype(torch::kFloat32));
  PTQ_CUDA_CHECK(launch_kv_decode_attention(a, plan, workspace.data_ptr<float>(), stream_of(qc)));
  return out;
}

std::unique_ptr<KVCache> CudaInt8KVCacheFormat::create(const KVCacheShape& shape) const {
  if (!shape.device.is_cuda()) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true))
      log_warning("cuda backend: int8 KV cache on {}: the attention kernel runs on CUDA devices only; using the "
                  "reference int8 cache there",
                  shape.device.str());
    return Int8KVCacheFormat::create(shape);
  }
  return std::make_unique<CudaInt8KVCache>(shape, params());
}

}  // namespace ptq::cuda
