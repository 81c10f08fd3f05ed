#include "algorithms/group_scaling.h"

#include <torch/torch.h>

#include <algorithm>
#include <random>

#include "framework/error.h"

namespace ptq {

void scale_scaling_group(ScalingGroup& group, const torch::Tensor& s) {
  torch::NoGradGuard no_grad;
  const int64_t C = group.producer_weight.size(0);
  PTQ_CHECK(s.dim() == 1 && s.size(0) == C, "scaling group \"{}\": {} scales for {} channels", group.name,
            s.numel(), C);
  const torch::Tensor s32 = s.to(torch::kFloat32);
  // Compute in float32 and copy back, so a bf16 network is rounded once per tensor.
  auto scale_rows = [&](torch::Tensor& t, bool divide) {
    if (!t.defined()) return;
    torch::Tensor factor = s32.to(t.device());
    if (t.dim() == 2) factor = factor.unsqueeze(1);
    torch::Tensor f32 = t.to(torch::kFloat32);
    t.copy_(divide ? f32 / factor : f32 * factor);
  };
  for (const auto& consumer : group.consumers) {
    PTQ_CHECK(!consumer->quantized,
              "scaling group \"{}\": consumer \"{}\" is already quantized; scale groups before rounding",
              group.name, consumer->path());
    PTQ_CHECK(consumer->in_features() == C, "scaling group \"{}\": consumer \"{}\" has {} inputs, expected {}",
              group.name, consumer->path(), consumer->in_features(), C);
  }
  scale_rows(group.producer_weight, /*divide=*/true);
  scale_rows(group.producer_bias, /*divide=*/true);
  for (const auto& consumer : group.consumers) {
    torch::Tensor& w = consumer->weight;
    w.copy_(w.to(torch::kFloat32) * s32.to(w.device()).unsqueeze(0));
  }
}

void ChannelAbsMaxObserver::observe(const torch::Tensor& x) {
  torch::Tensor m = x.detach().reshape({-1, x.size(-1)}).abs().amax(0).to(torch::kFloat32);
  absmax_ = absmax_.defined() ? torch::maximum(absmax_, m) : m;
}

torch::Tensor consumer_weight_absmax(const ScalingGroup& group) {
  PTQ_CHECK(!group.consumers.empty(), "scaling group \"{}\" has no consumers", group.name);
  torch::Tensor m;
  for (const auto& consumer : group.consumers) {
    torch::Tensor c = consumer->weight.abs().amax(0).to(torch::kFloat32);
    m = m.defined() ? torch::maximum(m, c) : c;
  }
  return m;
}

int64_t inject_outliers(CausalLM& net, NetworkHelper& helper, const OutlierInjection& options) {
  PTQ_CHECK(options.factor > 0, "outlier injection: factor must be positive, got {}", options.factor);
  std::mt19937_64 rng(options.seed);
  int64_t changed = 0;
  for (int64_t layer = 0; layer < net.num_decoder_layers(); ++layer) {
    for (ScalingGroup& group : helper.scaling_groups(net, layer)) {
      if (group.producer_weight.dim() != 1) continue;  // norms only: where LLM outliers live
      const int64_t C = group.producer_weight.size(0);
      PTQ_CHECK(options.channels >= 0 && options.channels <= C,
                "outlier injection: {} channels asked, group \"{}\" has {}", options.channels, group.name, C);
      std::vector<int64_t> order(static_cast<size_t>(C));
      for (int64_t j = 0; j < C; ++j) order[j] = j;
      std::shuffle(order.begin(), order.end(), rng);
      torch::Tensor s = torch::ones({C}, torch::kFloat32);
      for (int64_t i = 0; i < options.channels; ++i) s[order[i]] = 1.0 / options.factor;
      scale_scaling_group(group, s);
      ++changed;
    }
  }
  return changed;
}

}  // namespace ptq
