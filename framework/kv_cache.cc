#include "framework/kv_cache.h"

#include <torch/torch.h>

#include "framework/attention.h"
#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq {

torch::Tensor KVCache::attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const {
  return grouped_query_attention(q, keys(), values(), allowed, scale);
}

FloatKVCache::FloatKVCache(const KVCacheShape& shape) : shape_(shape) {
  auto opts = torch::TensorOptions().dtype(shape.dtype).device(shape.device);
  int64_t capacity = std::max<int64_t>(shape.capacity, 16);
  k_ = torch::empty({shape.batch, shape.kv_heads, capacity, shape.head_dim}, opts);
  v_ = torch::empty_like(k_);
}

void FloatKVCache::append(const torch::Tensor& k, const torch::Tensor& v) {
  PTQ_CHECK(k.dim() == 4 && k.size(0) == shape_.batch && k.size(1) == shape_.kv_heads && k.size(3) == shape_.head_dim,
            "KV cache: appended keys have shape {}, expected [{}, {}, T, {}]", k.sizes(), shape_.batch,
            shape_.kv_heads, shape_.head_dim);
  const int64_t t = k.size(2);
  if (length_ + t > k_.size(2)) {
    int64_t capacity = std::max(length_ + t, 2 * k_.size(2));
    auto grow = [&](const torch::Tensor& old) {
      auto bigger = torch::empty({shape_.batch, shape_.kv_heads, capacity, shape_.head_dim}, old.options());
      bigger.narrow(2, 0, length_).copy_(old.narrow(2, 0, length_));
      return bigger;
    };
    k_ = grow(k_);
    v_ = grow(v_);
  }
  k_.narrow(2, length_, t).copy_(k);
  v_.narrow(2, length_, t).copy_(v);
  length_ += t;
}

torch::Tensor FloatKVCache::keys() const { return k_.narrow(2, 0, length_); }
torch::Tensor FloatKVCache::values() const { return v_.narrow(2, 0, length_); }

int64_t FloatKVCache::memory_bytes() const {
  return 2 * length_ * shape_.batch * shape_.kv_heads * shape_.head_dim * k_.element_size();
}

std::unique_ptr<KVCache> FloatKVCacheFormat::create(const KVCacheShape& shape) const {
  return std::make_unique<FloatKVCache>(shape);
}

KVCacheSlotImpl::KVCacheSlotImpl() : format_(std::make_shared<FloatKVCacheFormat>()) {}

void KVCacheSlotImpl::set_format(std::shared_ptr<KVCacheFormat> format) {
  PTQ_CHECK(format != nullptr, "KV cache slot {}: format must not be null", path_);
  format_ = std::move(format);
}

void KVCacheSlotImpl::observe(const torch::Tensor& k, const torch::Tensor& v) {
  for (auto& observer : observers_) observer->observe(k, v);
}

int64_t DecodeState::memory_bytes() const {
  int64_t total = 0;
  for (const auto& cache : caches) total += cache->memory_bytes();
  return total;
}

}  // namespace ptq
