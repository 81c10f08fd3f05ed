#include "algorithms/round_to_nearest.h"

#include "algorithms/builtin_algorithms.h"
#include "framework/linear_quantization.h"

namespace ptq {
namespace {

class RoundToNearestStage : public LayerStage {
 public:
  std::string name() const override { return "rtn"; }
  void process(LayerContext& ctx) override {
    for (auto& [linear, scheme] : rounding_targets(ctx.linears, ctx.config, ctx.report))
      install_quantized_weight(*linear, quantize_weight(linear->weight, scheme.weight), scheme, "rtn", ctx.report);
  }
};

}  // namespace

RoundToNearest::RoundToNearest(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> RoundToNearest::stages() const { return {make_round_to_nearest_stage()}; }

std::shared_ptr<LayerStage> make_round_to_nearest_stage() { return std::make_shared<RoundToNearestStage>(); }

}  // namespace ptq
