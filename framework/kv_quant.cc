#include "framework/kv_quant.h"

#include <torch/torch.h>

#include "framework/error.h"
#include "framework/int8_codes.h"
#include "framework/quantized_weight.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

torch::Tensor to_codes(const torch::Tensor& x, const torch::Tensor& scale) {
  return (x.to(torch::kFloat32) / scale).round().clamp(kInt8CodeMin, kInt8CodeMax).to(torch::kInt8);
}

}  // namespace

KVQuantParams KVQuantParams::dynamic_per_token() { return KVQuantParams{}; }

KVQuantParams KVQuantParams::static_per_channel(torch::Tensor k_scale, torch::Tensor v_scale) {
  KVQuantParams p;
  p.mode = KVQuantMode::kStaticPerChannel;
  p.k_scale = std::move(k_scale);
  p.v_scale = std::move(v_scale);
  return p;
}

std::string KVQuantParams::to_string() const {
  return mode == KVQuantMode::kStaticPerChannel ? "int8-static-per-channel" : "int8-dynamic-per-token";
}

torch::Tensor normalize_kv_scale(const torch::Tensor& scale, int64_t kv_heads, int64_t head_dim,
                                 const std::string& what) {
  PTQ_CHECK(scale.defined(), "int8 KV cache: static {} is undefined (static per-channel mode needs calibrated scales)",
            what);
  PTQ_CHECK(torch::isFloatingType(scale.scalar_type()), "int8 KV cache: {} has dtype {}, expected a float dtype", what,
            scale.scalar_type());
  auto s = scale.to(torch::kFloat32);
  torch::Tensor out;
  if (s.numel() == 1) {
    out = s.reshape({1, 1}).expand({kv_heads, head_dim});
  } else if (s.dim() == 1 && s.size(0) == kv_heads) {
    out = s.view({kv_heads, 1}).expand({kv_heads, head_dim});
  } else if (s.dim() == 1 && s.size(0) == kv_heads * head_dim) {
    out = s.view({kv_heads, head_dim});
  } else if (s.dim() == 2 && s.size(0) == kv_heads && s.size(1) == head_dim) {
    out = s;
  } else {
    fail("int8 KV cache: {} has shape {}, expected [], [1], [{}], [{}] or [{}, {}] (kv_heads {}, head_dim {})", what,
         scale.sizes(), kv_heads, kv_heads * head_dim, kv_heads, head_dim, kv_heads, head_dim);
  }
  PTQ_CHECK(out.gt(0).all().item<bool>() && out.isfinite().all().item<bool>(),
            "int8 KV cache: {} must be positive and finite", what);
  return out.contiguous();
}

torch::Tensor kv_scale_from_absmax(const torch::Tensor& absmax) {
  return nonzero_scale(div_exact(absmax.to(torch::kFloat32).abs(), kInt8CodeMax));
}

KVCodes quantize_kv(const torch::Tensor& x, KVQuantMode mode, const torch::Tensor& static_scale) {
  if (mode == KVQuantMode::kStaticPerChannel) {
    return {to_codes(x, static_scale.unsqueeze(1)), torch::Tensor()};  // [Hkv, D] over [B, Hkv, T, D]
  }
  auto s = nonzero_scale(div_exact(x.to(torch::kFloat32).abs().amax(-1), kInt8CodeMax));  // [B, Hkv, T]
  return {to_codes(x, s.unsqueeze(-1)), s};
}

// ---- Int8KVCache -------------------------------------------------------------------------------------

Int8KVCache::Int8KVCache(const KVCacheShape& shape, const KVQuantParams& params) : shape_(shape), params_(params) {
  if (params_.mode == KVQuantMode::kStaticPerChannel) {
    params_.k_scale = normalize_kv_scale(params.k_scale, shape.kv_heads, shape.head_dim, "k_scale").to(shape.device);
    params_.v_scale = normalize_kv_scale(params.v_scale, shape.kv_heads, shape.head_dim, "v_scale").to(shape.device);
  }
  const int64_t capacity = std::max<int64_t>(shape.capacity, 16);
  auto codes = torch::TensorOptions().dtype(torch::kInt8).device(shape.device);
  k_ = torch::empty({shape.batch, shape.kv_heads, capacity, shape.head_dim}, codes);
  v_ = torch::empty_like(k_);
  if (params_.mode == KVQuantMode::kDynamicPerToken) {
    k_s_ = torch::empty({shape.batch, shape.kv_heads, capacity}, codes.dtype(torch::kFloat32));
    v_s_ = torch::empty_like(k_s_);
  }
}

void Int8KVCache::append(const torch::Tensor& k, const torch::Tensor& v) {
  for (const auto* t : {&k, &v}) {
    PTQ_CHECK(t->dim() == 4 && t->size(0) == shape_.batch && t->size(1) == shape_.kv_heads &&
                  t->size(3) == shape_.head_dim && t->size(2) == k.size(2),
              "int8 KV cache: appended {} have shape {}, expected [{}, {}, T, {}] (same T for keys and values)",
              t == &k ? "keys" : "values", t->sizes(), shape_.batch, shape_.kv_heads, shape_.head_dim);
  }
  const int64_t t = k.size(2);
  if (length_ + t > k_.size(2)) {
    const int64_t capacity = std::max(length_ + t, 2 * k_.size(2));
    auto grow = [&](const torch::Tensor& old) {
      std::vector<int64_t> sizes = old.sizes().vec();
      sizes[2] = capacity;
      auto bigger = torch::empty(sizes, old.options());
      bigger.narrow(2, 0, length_).copy_(old.narrow(2, 0, length_));
      return bigger;
    };
    k_ = grow(k_);
    v_ = grow(v_);
    if (k_s_.defined()) {
      k_s_ = grow(k_s_);
      v_s_ = grow(v_s_);
    }
  }
  const KVCodes kq = quantize_kv(k, params_.mode, params_.k_scale);
  const KVCodes vq = quantize_kv(v, params_.mode, params_.v_scale);
  k_.narrow(2, length_, t).copy_(kq.codes);
  v_.narrow(2, length_, t).copy_(vq.codes);
  if (params_.mode == KVQuantMode::kDynamicPerToken) {
    k_s_.narrow(2, length_, t).copy_(kq.scales);
    v_s_.narrow(2, length_, t).copy_(vq.scales);
  }
  length_ += t;
}

torch::Tensor Int8KVCache::key_codes() const { return k_.narrow(2, 0, length_); }
torch::Tensor Int8KVCache::value_codes() const { return v_.narrow(2, 0, length_); }
torch::Tensor Int8KVCache::key_scales() const {
  return params_.mode == KVQuantMode::kStaticPerChannel ? params_.k_scale : k_s_.narrow(2, 0, length_);
}
torch::Tensor Int8KVCache::value_scales() const {
  return params_.mode == KVQuantMode::kStaticPerChannel ? params_.v_scale : v_s_.narrow(2, 0, length_);
}

torch::Tensor Int8KVCache::dequantize(const torch::Tensor& codes, const torch::Tensor& scales) const {
  // Static [Hkv, D] -> [1, Hkv, 1, D]; dynamic [B, Hkv, S] -> [B, Hkv, S, 1].
  auto s = params_.mode == KVQuantMode::kStaticPerChannel ? scales.unsqueeze(1) : scales.unsqueeze(-1);
  return (codes.to(torch::kFloat32) * s).to(shape_.dtype);
}

torch::Tensor Int8KVCache::keys() const { return dequantize(key_codes(), key_scales()); }
torch::Tensor Int8KVCache::values() const { return dequantize(value_codes(), value_scales()); }

int64_t Int8KVCache::memory_bytes() const {
  const int64_t tokens = shape_.batch * shape_.kv_heads * length_;
  int64_t bytes = 2 * tokens * shape_.head_dim;  // int8 keys and values
  if (params_.mode == KVQuantMode::kDynamicPerToken) bytes += 2 * tokens * 4;  // float32 scale per token and head
  return bytes;
}

Int8KVCacheFormat::Int8KVCacheFormat(KVQuantParams params) : params_(std::move(params)) {
  if (params_.mode == KVQuantMode::kStaticPerChannel) {
    PTQ_CHECK(params_.k_scale.defined() && params_.v_scale.defined(),
              "int8 KV cache format: static per-channel mode needs k_scale and v_scale");
  }
}

std::unique_ptr<KVCache> Int8KVCacheFormat::create(const KVCacheShape& shape) const {
  return std::make_unique<Int8KVCache>(shape, params_);
}

}  // namespace ptq
