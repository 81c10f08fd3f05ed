// The rtn_mse plugin: round-to-nearest whose clipping range is searched per block to minimise the
// quantization error (mse_clip_search.h). A complete ptq plugin in one file: an Algorithm with one
// LayerStage, and the init that registers it. Use it with `ptq --plugin libptq_plugin_rtn_mse.so
// quantize ...` and a config that says "rounding": "rtn_mse" (optionally
// "algo_args": {"rtn_mse": {"grid": 20, "min_ratio": 0.5, "norm": 2.4}}). docs/PLUGINS.md walks through it.
#include <torch/torch.h>

#include "examples/plugins/rtn_mse/mse_clip_search.h"
#include "framework/algorithm.h"
#include "framework/linear_quantization.h"
#include "framework/log.h"
#include "framework/plugin.h"

namespace ptq_plugins {
namespace {

constexpr const char* kName = "rtn_mse";

// Data-free: each linear is quantized from its weight alone, so the stage works in any pass (alone, or
// after SmoothQuant/AWQ have rescaled the weights, when PTQ composes it as the rounding step).
class RtnMseStage : public ptq::LayerStage {
 public:
  explicit RtnMseStage(MseClipOptions options) : options_(options) {}
  std::string name() const override { return kName; }

  void process(ptq::LayerContext& ctx) override {
    torch::NoGradGuard no_grad;
    for (const auto& [linear, scheme] : ptq::rounding_targets(ctx.linears, ctx.config, ctx.report)) {
      ptq::WeightQuantSpec spec = scheme.weight;
      spec.clip_ratio_per_group = search_clip_ratios(linear->weight, spec, options_);
      ptq::log_debug("rtn_mse: {}: mean clip ratio {:.3f}", linear->path(),
                     spec.clip_ratio_per_group.mean().item<double>());
      ptq::install_quantized_weight(*linear, ptq::quantize_weight(linear->weight, spec), scheme, kName, ctx.report);
    }
  }

 private:
  MseClipOptions options_;
};

class RtnMse : public ptq::Algorithm {
 public:
  // The options are parsed here so that a bad algo_args.rtn_mse fails when the algorithm is created,
  // before any layer is touched.
  explicit RtnMse(const ptq::PTQConfig& config)
      : ptq::Algorithm(config), options_(MseClipOptions::from_json(config.algo_args_for(kName))) {}
  std::string name() const override { return kName; }
  std::vector<std::shared_ptr<ptq::LayerStage>> stages() const override {
    return {std::make_shared<RtnMseStage>(options_)};
  }

 private:
  MseClipOptions options_;
};

void init() {
  ptq::register_algorithm({kName, "round to nearest with per-block clip ratios searched to minimise |w - q(w)|^p",
                           [](const ptq::PTQConfig& config) { return std::make_unique<RtnMse>(config); }});
}

}  // namespace
}  // namespace ptq_plugins

PTQ_PLUGIN(ptq_plugins::init)
