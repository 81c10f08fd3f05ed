// KVCacheInt8: the attention caches store int8 codes (framework/kv_quant.h).
//
//   kvcache_quant_granularity per_channel  static: one scale per (KV head, channel) from calibration:
//                                          k_scale[h, d] = max |k[., h, ., d]| / 127 over every
//                                          calibration token (keys after RoPE, as the cache sees them),
//                                          and the same for values
//   kvcache_quant_granularity per_token    dynamic: scales computed per token as it arrives; no data
//
// The stage installs an Int8KVCacheFormat from the backend the config names (config.backend; "auto" or
// a backend without int8 KV support: the reference backend) in every KV-cache slot of the layer, so the
// following layers calibrate on what the int8 cache returns.
#pragma once

#include <memory>
#include <vector>

#include "framework/algorithm.h"
#include "framework/kv_checkpoint.h"  // collect_kv_cache_slots, make_int8_kv_cache_format
#include "framework/kv_quant.h"

namespace ptq {

class KVCacheInt8 : public Algorithm {
 public:
  explicit KVCacheInt8(PTQConfig config);
  std::string name() const override { return "kv_cache_int8"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

std::shared_ptr<LayerStage> make_kv_cache_int8_stage(bool static_scales);

}  // namespace ptq
