#include "backends/cpu/kv_cache_cpu.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kv_attention_avx512.h"
#include "backends/cpu/tiling.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq::cpu {

Support int8_kv_attention_supports(const KVQuantParams& params) {
  if (!has_avx512())
    return Support::no(fmt::format("int8 KV-cache attention ({}) needs AVX-512 F/BW/VL/DQ and FMA; this CPU has: {}",
                                   params.to_string(), cpu_feature_summary()));
  return Support::yes();
}

CpuInt8KVCache::CpuInt8KVCache(const KVCacheShape& shape, const KVQuantParams& params)
    : shape_(shape), params_(params) {
  PTQ_CHECK(shape.device.is_cpu(), "cpu int8 KV cache: device {} is not the CPU", shape.device.str());
  PTQ_CHECK(shape.batch >= 1 && shape.kv_heads >= 1 && shape.head_dim >= 1,
            "cpu int8 KV cache: batch, kv_heads and head_dim must be positive, got {}, {}, {}", shape.batch,
            shape.kv_heads, shape.head_dim);
  if (params_.mode == KVQuantMode::kStaticPerChannel) {
    params_.k_scale = normalize_kv_scale(params.k_scale, shape.kv_heads, shape.head_dim, "k_scale").cpu().contiguous();
    params_.v_scale = normalize_kv_scale(params.v_scale, shape.kv_heads, shape.head_dim, "v_scale").cpu().contiguous();
  }
  const int64_t cap = round_up(std::max<int64_t>(shape.capacity, kKVBlock), kKVBlock);
  const auto codes = torch::TensorOptions().dtype(torch::kInt8);
  k_ = torch::empty({shape.batch, shape.kv_heads, cap / kKVBlock, shape.head_dim, kKVBlock}, codes);
  v_ = torch::empty({shape.batch, shape.kv_heads, cap, shape.head_dim}, codes);
  if (params_.mode == KVQuantMode::kDynamicPerToken) {
    k_s_ = torch::empty({shape.batch, shape.kv_heads, cap}, codes.dtype(torch::kFloat32));
    v_s_ = torch::empty_like(k_s_);
  }
}

void CpuInt8KVCache::append(const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t B = shape_.batch, Hkv = shape_.kv_heads, D = shape_.head_dim;
  for (const auto* t : {&k, &v}) {
    PTQ_CHECK(t->dim() == 4 && t->size(0) == B && t->size(1) == Hkv && t->size(3) == D && t->size(2) == k.size(2),
              "cpu int8 KV cache: appended {} have shape {}, expected [{}, {}, T, {}] (same T for keys and values)",
              t == &k ? "keys" : "values", t->sizes(), B, Hkv, D);
    PTQ_CHECK(t->device().is_cpu(), "cpu int8 KV cache: appended {} are on {}, expected the CPU",
              t == &k ? "keys" : "values", t->device().str());
  }
  const int64_t T = k.size(2);
  if (length_ + T > capacity()) {
    const int64_t cap = std::max(round_up(length_ + T, kKVBlock), 2 * capacity());
    const int64_t used_blocks = (length_ + kKVBlock - 1) / kKVBlock;
    auto grow = [&](const torch::Tensor& old, int64_t new_size, int64_t used) {
      std::vector<int64_t> sizes = old.sizes().vec();
      sizes[2] = new_size;
      auto bigger = torch::empty(sizes, old.options());
      if (used > 0) bigger.narrow(2, 0, used).copy_(old.narrow(2, 0, used));
      return bigger;
    };
    k_ = grow(k_, cap / kKVBlock, used_blocks);
    v_ = grow(v_, cap, length_);
    if (k_s_.defined()) {
      k_s_ = grow(k_s_, cap, length_);
      v_s_ = grow(v_s_, cap, length_);
    }
  }
  const KVCodes kq = quantize_kv(k, params_.mode, params_.k_scale);
  const KVCodes vq = quantize_kv(v, params_.mode, params_.v_scale);
  // Keys into the blocked layout: position p, channel d -> block p / 16, byte 16 d + p % 16.
  const auto kc = kq.codes.contiguous();
  const int8_t* src = kc.data_ptr<int8_t>();
  int8_t* dst = k_.data_ptr<int8_t>();
  const int64_t blocks = k_.size(2);
  for (int64_t bh = 0; bh < B * Hkv; ++bh) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = length_ + t;
      int8_t* out = dst + ((bh * blocks + p / kKVBlock) * D) * kKVBlock + p % kKVBlock;
      const int8_t* in = src + (bh * T + t) * D;
      for (int64_t d = 0; d < D; ++d) out[d * kKVBlock] = in[d];
    }
  }
  v_.narrow(2, length_, T).copy_(vq.codes);
  if (params_.mode == KVQuantMode::kDynamicPerToken) {
    k_s_.narrow(2, length_, T).copy_(kq.scales);
    v_s_.narrow(2, length_, T).copy_(vq.scales);
  }
  length_ += T;
}

torch::Tensor CpuInt8KVCache::key_codes() const {
  const int64_t B = shape_.batch, Hkv = shape_.kv_heads, D = shape_.head_dim;
  // [B, Hkv, blocks, D, 16] -> [B, Hkv, blocks, 16, D] -> [B, Hkv, blocks * 16, D]
  return k_.permute({0, 1, 2, 4, 3}).reshape({B, Hkv, k_.size(2) * kKVBlock, D}).narrow(2, 0, length_).contiguous();
}
torch::Tensor CpuInt8KVCache::value_codes() const { return v_.narrow(2, 0, length_).contiguous(); }
torch::Tensor CpuInt8KVCache::key_scales() const {
  return params_.mode == KVQuantMode::kStaticPerChannel ? params_.k_scale : k_s_.narrow(2, 0, length_).contiguous();
}
torch::Tensor CpuInt8KVCache::value_scales() const {
  return params_.mode == KVQuantMode::kStaticPerChannel ? params_.v_scale : v_s_.narrow(2, 0, length_).contiguous();
}

torch::Tensor CpuInt8KVCache::dequantize(const torch::Tensor& codes, const torch::Tensor& scales) const {
  auto s = params_.mode == KVQuantMode::kStaticPerChannel ? scales.unsqueeze(1) : scales.unsqueeze(-1);
  return (codes.to(torch::kFloat32) * s).to(shape_.dtype);
}
torch::Tensor CpuInt8KVCache::keys() const { return dequantize(key_codes(), key_scales()); }
torch::Tensor CpuInt8KVCache::values() const { return dequantize(value_codes(), value_scales()); }

int64_t CpuInt8KVCache::memory_bytes() const {
  const int64_t tokens = shape_.batch * shape_.kv_heads * length_;
  int64_t bytes = 2 * tokens * shape_.head_dim;
  if (params_.mode == KVQuantMode::kDynamicPerToken) bytes += 2 * tokens * 4;
  return bytes;
}

torch::Tensor CpuInt8KVCache::attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const {
  const int64_t B = shape_.batch, Hkv = shape_.kv_heads, D = shape_.head_dim, S = length_;
  PTQ_CHECK(q.dim() == 4 && q.size(0) == B && q.size(3) == D && q.size(1) % Hkv == 0,
            "cpu int8 KV attention: q has shape {}, expected [{}, H, T, {}] with H a multiple of {} KV heads",
            q.sizes(), B, D, Hkv);
  PTQ_CHECK(q.device().is_cpu(), "cpu int8 KV attention: q is on {}, expected the CPU", q.device().str());
  const int64_t H = q.size(1), T = q.size(2), G = H / Hkv;
  const torch::Tensor qf = q.to(torch::kFloat32).contiguous();
  torch::Tensor mask;
  if (allowed.defined()) {
    PTQ_CHECK(allowed.dim() == 3 && allowed.size(0) == B && allowed.size(1) == T && allowed.size(2) == S,
              "cpu int8 KV attention: allowed has shape {}, expected [{}, {}, {}]", allowed.sizes(), B, T, S);
    mask = allowed.to(torch::kCPU, torch::kBool).contiguous();
  }
  auto out = torch::empty({B, H, T, D}, torch::kFloat32);
  if (T == 0) return out.to(q.scalar_type());

  Int8KVView base;
  base.head_dim = D;
  base.length = S;
  const int8_t* keys = k_.data_ptr<int8_t>();
  const int8_t* values = v_.data_ptr<int8_t>();
  const float* ks = k_s_.defined() ? k_s_.data_ptr<float>() : nullptr;
  const float* vs = v_s_.defined() ? v_s_.data_ptr<float>() : nullptr;
  const float* kc = params_.mode == KVQuantMode::kStaticPerChannel ? params_.k_scale.data_ptr<float>() : nullptr;
  const float* vc = params_.mode == KVQuantMode::kStaticPerChannel ? params_.v_scale.data_ptr<float>() : nullptr;
  const float* qp = qf.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const uint8_t* mp = mask.defined() ? reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>()) : nullptr;
  const int64_t blocks = k_.size(2), cap = capacity();
  // Query rows of one (sequence, KV head), token-major: row j is token j / G, head kv * G + j % G. Groups of
  // kKVMaxRows rows share the reads of the head's codes.
  const int64_t rows_per_head = G * T;
  const int64_t groups = (rows_per_head + kKVMaxRows - 1) / kKVMaxRows;
  const int64_t workspace = int8_kv_attention_workspace(D, S);
  const float fscale = static_cast<float>(scale);
  at::parallel_for(0, B * Hkv * groups, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> ws(static_cast<size_t>(workspace));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t bh = i / groups, group = i % groups, b = bh / Hkv, kv = bh % Hkv;
      Int8KVView view = base;
      view.keys = keys + bh * blocks * D * kKVBlock;
      view.values = values + bh * cap * D;
      if (ks) {
        view.key_token_scale = ks + bh * cap;
        view.value_token_scale = vs + bh * cap;
      } else {
        view.key_channel_scale = kc + kv * D;
        view.value_channel_scale = vc + kv * D;
      }
      AttentionRows rows;
      const int64_t j0 = group * kKVMaxRows, j1 = std::min(rows_per_head, j0 + kKVMaxRows);
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t t = j / G, h = kv * G + j % G;
        const int r = static_cast<int>(j - j0);
        rows.q[r] = qp + ((b * H + h) * T + t) * D;
        rows.out[r] = op + ((b * H + h) * T + t) * D;
        rows.allowed[r] = mp ? mp + (b * T + t) * S : nullptr;
      }
      rows.count = static_cast<int>(j1 - j0);
      int8_kv_attention_avx512(view, rows, fscale, ws.data());
    }
  });
  return out.to(q.scalar_type());
}

std::unique_ptr<KVCache> CpuInt8KVCacheFormat::create(const KVCacheShape& shape) const {
  if (!shape.device.is_cpu()) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true))
      log_warning("cpu backend: int8 KV cache on {}: the AVX-512 attention runs on the CPU only; using the "
                  "reference int8 cache there",
                  shape.device.str());
    return Int8KVCacheFormat::create(shape);
  }
  return std::make_unique<CpuInt8KVCache>(shape, params());
}

}  // namespace ptq::cpu
