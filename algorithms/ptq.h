// PTQ: the algorithm a config describes, composed from registered algorithms (Golden Stick's PTQ):
//
//   outlier suppression   "smooth_quant" (outliers_suppression smooth) | "awq" (awq)
//   rounding              "gptq" (precision_recovery gptq) | config.rounding ("rtn", or a plugin's)
//   activation ranges     "act_calibration" when some layer has static int8 activations
//   KV cache              "kv_cache_int8" when kvcache_quant_dtype is int8
//
// Their stages run in that order in one layer-wise pass. A part the config needs but this build has
// not registered is an error naming it.
#pragma once

#include "framework/algorithm.h"

namespace ptq {

class PTQ : public Algorithm {
 public:
  explicit PTQ(PTQConfig config);
  std::string name() const override { return "ptq"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
  // The algorithm names composed, in order ("awq", "rtn", "kv_cache_int8").
  std::vector<std::string> composition() const;
};

}  // namespace ptq
