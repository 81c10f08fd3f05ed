// The KV-cache slot. Attention layers never store keys and values themselves: they append them to a
// KVCache made by their KVCacheSlot, whose format (float, int8 static per-channel, int8 dynamic
// per-token, ...) an algorithm can swap, and whose observers see every key/value written (calibration).
// A format may also supply a fused attention over its own storage (KVCache::attend).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

namespace ptq {

struct KVCacheShape {
  int64_t batch = 1;
  int64_t kv_heads = 1;
  int64_t head_dim = 1;
  int64_t capacity = 0;                        // expected tokens; storage grows past it if needed
  torch::ScalarType dtype = torch::kFloat32;   // compute dtype of keys/values handed in and out
  torch::Device device = torch::kCPU;
};

// The keys and values of one attention layer for one batch of sequences.
class KVCache {
 public:
  virtual ~KVCache() = default;
  // k, v: [B, Hkv, T, D] for T new positions (keys after RoPE).
  virtual void append(const torch::Tensor& k, const torch::Tensor& v) = 0;
  // Everything stored so far, in the compute dtype: [B, Hkv, S, D].
  virtual torch::Tensor keys() const = 0;
  virtual torch::Tensor values() const = 0;
  // Attention of q [B, H, T, D] over the stored entries (allowed: bool [B, T, S] or undefined).
  // The default dequantizes and calls grouped_query_attention; backends override with fused kernels.
  virtual torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& allowed, double scale) const;
  virtual int64_t length() const = 0;
  virtual int64_t memory_bytes() const = 0;
  virtual std::string name() const = 0;
};

// Makes caches of one storage format.
class KVCacheFormat {
 public:
  virtual ~KVCacheFormat() = default;
  virtual std::unique_ptr<KVCache> create(const KVCacheShape& shape) const = 0;
  virtual std::string name() const = 0;
};

// Keys/values in the compute dtype, in a buffer that grows by doubling (amortised O(1) append).
class FloatKVCache : public KVCache {
 public:
  explicit FloatKVCache(const KVCacheShape& shape);
  void append(const torch::Tensor& k, const torch::Tensor& v) override;
  torch::Tensor keys() const override;
  torch::Tensor values() const override;
  int64_t length() const override { return length_; }
  int64_t memory_bytes() const override;
  std::string name() const override { return "float"; }

 private:
  KVCacheShape shape_;
  torch::Tensor k_, v_;  // [B, Hkv, capacity, D]
  int64_t length_ = 0;
};

class FloatKVCacheFormat : public KVCacheFormat {
 public:
  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const override;
  std::string name() const override { return "float"; }
};

// Sees every key/value written to a slot's caches (calibration of KV-cache quantization).
class KVObserver {
 public:
  virtual ~KVObserver() = default;
  virtual void observe(const torch::Tensor& k, const torch::Tensor& v) = 0;  // [B, Hkv, T, D] each
};

// One per attention layer. Quantization state that belongs to the model (e.g. calibrated k/v scales)
// is registered on this module as buffers, so it is saved with the network.
class KVCacheSlotImpl : public torch::nn::Module {
 public:
  KVCacheSlotImpl();
  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const { return format_->create(shape); }
  void set_format(std::shared_ptr<KVCacheFormat> format);
  const std::shared_ptr<KVCacheFormat>& format() const { return format_; }

  void add_observer(std::shared_ptr<KVObserver> observer) { observers_.push_back(std::move(observer)); }
  void clear_observers() { observers_.clear(); }
  bool has_observers() const { return !observers_.empty(); }
  void observe(const torch::Tensor& k, const torch::Tensor& v);

  const std::string& path() const { return path_; }
  void set_path(std::string path) { path_ = std::move(path); }

 private:
  std::shared_ptr<KVCacheFormat> format_;
  std::vector<std::shared_ptr<KVObserver>> observers_;
  std::string path_;
};
TORCH_MODULE(KVCacheSlot);

// Generation state of a decoder-only network: one cache per decoder layer plus per-sequence bookkeeping
// for batches of different lengths (left padding).
struct DecodeState {
  std::vector<std::unique_ptr<KVCache>> caches;
  torch::Tensor key_valid;      // bool [B, S]: false where the cache holds padding
  torch::Tensor next_position;  // int64 [B]: RoPE position of each sequence's next token
  int64_t length() const { return caches.empty() ? 0 : caches.front()->length(); }
  int64_t memory_bytes() const;
};

}  // namespace ptq
