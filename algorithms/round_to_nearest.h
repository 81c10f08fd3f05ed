// RoundToNearest: every weight rounded to its nearest code under the config's scheme (W8A16
// per-channel, W4A16 / W3A16 per-group, W8A8 with dynamic activations), no calibration data. The
// baseline every other algorithm is measured against, and the rounding step PTQ uses after outlier
// suppression unless GPTQ or a plugin does the rounding.
#pragma once

#include "framework/algorithm.h"

namespace ptq {

class RoundToNearest : public Algorithm {
 public:
  explicit RoundToNearest(PTQConfig config);
  std::string name() const override { return "rtn"; }
  std::vector<std::shared_ptr<LayerStage>> stages() const override;
};

// The stage alone (PTQ composes it with others).
std::shared_ptr<LayerStage> make_round_to_nearest_stage();

}  // namespace ptq
