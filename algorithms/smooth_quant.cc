#include "algorithms/smooth_quant.h"

#include <torch/torch.h>

#include <algorithm>

#include "algorithms/builtin_algorithms.h"
#include "algorithms/group_scaling.h"
#include "framework/error.h"

namespace ptq {
namespace {

// Which groups of a layer to smooth (see the header for the linear -> linear rule).
std::vector<ScalingGroup> selected_groups(std::vector<ScalingGroup> groups, const SmoothQuantOptions& options) {
  std::vector<std::string> attention_inputs;  // consumers of the first norm group
  for (const auto& g : groups) {
    if (g.producer_weight.dim() != 1) continue;
    for (const auto& c : g.consumers) attention_inputs.push_back(c->path());
    break;
  }
  std::vector<ScalingGroup> chosen;
  for (auto& g : groups) {
    bool take = g.producer_weight.dim() == 1;
    if (!take) {
      const bool attention_side =
          std::find(attention_inputs.begin(), attention_inputs.end(), g.producer_path) != attention_inputs.end();
      take = attention_side ? options.smooth_vo : options.smooth_up_down;
    }
    if (take) chosen.push_back(std::move(g));
  }
  return chosen;
}

class SmoothQuantStage : public LayerStage {
 public:
  explicit SmoothQuantStage(SmoothQuantOptions options) : options_(options) {}
  std::string name() const override { return "smooth_quant"; }
  bool needs_calibration_data() const override { return true; }

  void process(LayerContext& ctx) override {
    if (ctx.is_head() || !ctx.has_data()) return;  // the head has no scaling groups
    std::vector<ScalingGroup> groups =
        selected_groups(ctx.helper.scaling_groups(ctx.net, ctx.layer_index), options_);
    if (groups.empty()) return;
    // One pass gathers every group's statistics on the float layer. Smoothing one group does not change
    // another's input statistics except v->o / up->down, whose inputs are divided by exactly the s their
    // own smoothing multiplies back, so statistics taken before any smoothing are the right ones.
    std::vector<std::shared_ptr<ChannelAbsMaxObserver>> observers;
    for (auto& g : groups) {
      observers.push_back(std::make_shared<ChannelAbsMaxObserver>());
      g.consumers.front()->add_observer(observers.back());  // consumers share their input
    }
    ctx.run_layer();
    for (auto& g : groups) g.consumers.front()->clear_observers();

    const double a = options_.alpha;
    for (size_t i = 0; i < groups.size(); ++i) {
      PTQ_CHECK(observers[i]->absmax().defined(), "smooth_quant: group \"{}\" saw no input during calibration",
                groups[i].name);
      const torch::Tensor x = observers[i]->absmax().cpu();
      const torch::Tensor w = consumer_weight_absmax(groups[i]).cpu();
      torch::Tensor s = x.pow(a) / w.pow(1.0 - a);
      s = torch::where((x > 0) & (w > 0) & torch::isfinite(s), s, torch::ones_like(s)).clamp_min(1e-5);
      scale_scaling_group(groups[i], s);
    }
  }

 private:
  SmoothQuantOptions options_;
};

}  // namespace

SmoothQuantOptions SmoothQuantOptions::from_config(const PTQConfig& config) {
  const nlohmann::json args = config.algo_args_for("smooth_quant");
  SmoothQuantOptions o;
  o.alpha = args.value("alpha", o.alpha);
  o.smooth_vo = args.value("smooth_vo", o.smooth_vo);
  o.smooth_up_down = args.value("smooth_up_down", o.smooth_up_down);
  PTQ_CHECK(o.alpha >= 0.0 && o.alpha <= 1.0, "algo_args.smooth_quant.alpha must be in [0, 1], got {}", o.alpha);
  return o;
}

SmoothQuant::SmoothQuant(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> SmoothQuant::stages() const {
  return {make_smooth_quant_stage(SmoothQuantOptions::from_config(config_))};
}

std::shared_ptr<LayerStage> make_smooth_quant_stage(const SmoothQuantOptions& options) {
  return std::make_shared<SmoothQuantStage>(options);
}

}  // namespace ptq
