#include "algorithms/kv_cache_int8.h"

#include <torch/torch.h>

#include "algorithms/builtin_algorithms.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "framework/kv_checkpoint.h"

namespace ptq {
namespace {

// Running max |k| and max |v| per (KV head, channel).
class KVAbsMaxObserver : public KVObserver {
 public:
  void observe(const torch::Tensor& k, const torch::Tensor& v) override {
    auto reduce = [](const torch::Tensor& t) { return t.detach().abs().amax({0, 2}).to(torch::kFloat32); };
    const torch::Tensor km = reduce(k), vm = reduce(v);
    k_ = k_.defined() ? torch::maximum(k_, km) : km;
    v_ = v_.defined() ? torch::maximum(v_, vm) : vm;
  }
  torch::Tensor k_, v_;  // float32 [Hkv, D]
};

class KVCacheInt8Stage : public LayerStage {
 public:
  explicit KVCacheInt8Stage(bool static_scales) : static_(static_scales) {}
  std::string name() const override { return "kv_cache_int8"; }
  bool needs_calibration_data() const override { return static_; }

  void process(LayerContext& ctx) override {
    if (ctx.is_head()) return;
    const std::string backend_name = to_string(ctx.config.backend);
    std::vector<std::shared_ptr<KVCacheSlotImpl>> slots = collect_kv_cache_slots(*ctx.net.decoder_layer(ctx.layer_index));
    if (!static_) {
      for (auto& slot : slots)
        slot->set_format(make_int8_kv_cache_format(backend_name, KVQuantParams::dynamic_per_token()));
      return;
    }
    PTQ_CHECK(ctx.has_data(), "kv_cache_int8: static KV scales need calibration data (layer {})", ctx.layer_index);
    std::vector<std::shared_ptr<KVAbsMaxObserver>> observers;
    for (auto& slot : slots) {
      observers.push_back(std::make_shared<KVAbsMaxObserver>());
      slot->add_observer(observers.back());
    }
    ctx.run_layer();
    for (size_t i = 0; i < slots.size(); ++i) {
      slots[i]->clear_observers();
      PTQ_CHECK(observers[i]->k_.defined(), "kv_cache_int8: KV cache \"{}\" saw no keys during calibration",
                slots[i]->path());
      KVQuantParams params = KVQuantParams::static_per_channel(kv_scale_from_absmax(observers[i]->k_),
                                                               kv_scale_from_absmax(observers[i]->v_));
      slots[i]->set_format(make_int8_kv_cache_format(backend_name, params));
    }
  }

 private:
  bool static_;
};

}  // namespace

KVCacheInt8::KVCacheInt8(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> KVCacheInt8::stages() const {
  return {make_kv_cache_int8_stage(config_.kvcache_quant_granularity != QuantGranularity::kPerToken)};
}

std::shared_ptr<LayerStage> make_kv_cache_int8_stage(bool static_scales) {
  return std::make_shared<KVCacheInt8Stage>(static_scales);
}

}  // namespace ptq
