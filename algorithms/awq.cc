#include "algorithms/awq.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "algorithms/builtin_algorithms.h"
#include "algorithms/group_scaling.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

// Every input a linear receives, kept as the mini-batches the driver runs ([b, T, C] each), so the
// inspected blocks can be re-run batch by batch.
class InputCapture : public LinearObserver {
 public:
  void observe(const torch::Tensor& x) override { batches.push_back(x.detach().clone()); }
  std::vector<torch::Tensor> batches;
};

// Every `stride`-th input row (token) a linear receives, flattened to [n, C] (the clip search's
// subsample: AutoAWQ's input[:, ::stride] over the concatenated calibration tokens).
class StridedRowCapture : public LinearObserver {
 public:
  explicit StridedRowCapture(int64_t stride) : stride_(stride) {}
  void observe(const torch::Tensor& x) override {
    torch::Tensor rows = x.detach().reshape({-1, x.size(-1)});
    const int64_t first = (stride_ - seen_ % stride_) % stride_;  // next multiple of stride, batch-local
    if (first < rows.size(0)) kept_.push_back(rows.slice(0, first, rows.size(0), stride_).to(torch::kFloat32));
    seen_ += rows.size(0);
  }
  torch::Tensor rows() const { return kept_.empty() ? torch::Tensor() : torch::cat(kept_, 0); }

 private:
  int64_t stride_;
  int64_t seen_ = 0;
  std::vector<torch::Tensor> kept_;
};

// Attention query/key projections are left out of the clip search (see the header). Named by the
// last path component, as AutoAWQ does, in the spellings of the HF families.
bool is_query_or_key(const std::string& path) {
  const std::string leaf = path.substr(path.rfind('.') + 1);
  for (const char* name : {"q_proj", "k_proj", "query", "key", "wq", "wk"})
    if (leaf == name) return true;
  return false;
}

// A group's consumers with the scheme each gets (nullopt: stays float, e.g. blacklisted).
struct GroupMember {
  std::shared_ptr<LinearImpl> linear;
  std::optional<ResolvedLinearScheme> scheme;
};

std::vector<GroupMember> group_members(const ScalingGroup& group, const PTQConfig& config) {
  std::vector<GroupMember> members;
  for (const auto& consumer : group.consumers) {
    ResolvedLinearScheme scheme = resolve_linear_scheme(config, *consumer);
    members.push_back({consumer, scheme.skip ? std::nullopt : std::optional<ResolvedLinearScheme>(scheme)});
  }
  return members;
}

// mean |x_j| over every token of the captured batches: float32 [C].
torch::Tensor input_abs_mean(const std::vector<torch::Tensor>& batches) {
  torch::Tensor sum;
  int64_t rows = 0;
  for (const auto& b : batches) {
    torch::Tensor flat = b.reshape({-1, b.size(-1)});
    torch::Tensor s = flat.abs().to(torch::kFloat32).sum(0);
    sum = sum.defined() ? sum + s : s;
    rows += flat.size(0);
  }
  return sum / static_cast<double>(rows);
}

// mean over the quantized consumers' rows of |W_rj| / max |W| in W_rj's quantization group: float32 [C].
// The normalised rows are written a block at a time into one [rows, C] tensor (no per-linear copies
// and no torch::cat of them: that transient was the peak of a layer-streamed AWQ run); the same
// tensor, so the same mean.
torch::Tensor weight_relative_mean(const std::vector<GroupMember>& members) {
  int64_t total = 0, in = 0;
  torch::Device device = torch::kCPU;
  for (const auto& m : members) {
    if (!m.scheme) continue;
    total += m.linear->weight.size(0);
    in = m.linear->weight.size(1);
    device = m.linear->weight.device();
  }
  torch::Tensor normalized = torch::empty({total, in}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  int64_t at = 0;
  for (const auto& m : members) {
    if (!m.scheme) continue;
    const torch::Tensor& weight = m.linear->weight;
    const int64_t out = weight.size(0);
    const BlockSize block = block_size(m.scheme->weight.group_size, out, in);
    const int64_t cols = block.rows > 1 ? in : block.cols;  // per-tensor: normalise per row like per-channel
    const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 20) / in);
    for (int64_t r0 = 0; r0 < out; r0 += rows) {
      const int64_t n = std::min(rows, out - r0);
      const torch::Tensor groups = weight.narrow(0, r0, n).to(torch::kFloat32).abs().view({n, in / cols, cols});
      normalized.narrow(0, at + r0, n).view({n, in / cols, cols}).copy_(groups / (groups.amax(-1, /*keepdim=*/true) + 1e-6));
    }
    at += out;
  }
  return normalized.mean(0);
}

// The candidate scales of the grid search, in the order they are tried: s = 1 first (ties keep it).
std::vector<torch::Tensor> candidate_scales(const torch::Tensor& x_mean, const torch::Tensor& w_mean,
                                            const AwqOptions& options) {
  std::vector<torch::Tensor> candidates{torch::ones_like(x_mean)};
  for (int64_t i = 0; i < options.grid; ++i) {
    const double a = static_cast<double>(i) / static_cast<double>(options.grid);
    torch::Tensor s = options.duo_scaling ? x_mean.pow(a) / (w_mean.pow(1.0 - a) + 1e-4) : x_mean.pow(a);
    s = s.clamp_min(1e-4);
    s = s / (s.max() * s.min()).sqrt();
    s = torch::where(torch::isfinite(s), s, torch::ones_like(s));
    candidates.push_back(s);
  }
  return candidates;
}

class AwqStage : public LayerStage {
 public:
  explicit AwqStage(AwqOptions options) : options_(options) {}
  std::string name() const override { return "awq"; }
  bool needs_calibration_data() const override { return true; }

  void process(LayerContext& ctx) override {
    if (ctx.is_head()) return;  // no scaling groups, and the head is usually left in float
    PTQ_CHECK(ctx.has_data(), "awq: layer {} has no calibration inputs", ctx.layer_index);
    torch::NoGradGuard no_grad;
    search_scales(ctx);
    if (options_.clip_search) search_clipping(ctx);
  }

 private:
  void search_scales(LayerContext& ctx) const {
    std::vector<ScalingGroup> groups = ctx.helper.scaling_groups(ctx.net, ctx.layer_index);
    std::vector<std::vector<GroupMember>> members;
    std::vector<std::shared_ptr<InputCapture>> captures;
    for (const auto& g : groups) {
      members.push_back(group_members(g, ctx.config));
      captures.push_back(std::make_shared<InputCapture>());
      g.consumers.front()->add_observer(captures.back());  // consumers share their input
    }
    // One float run captures every group's input: scaling a group is function-preserving, so inputs
    // captured before any scaling stay valid for the groups searched after it.
    ctx.run_layer();
    for (const auto& g : groups) g.consumers.front()->clear_observers();

    for (size_t i = 0; i < groups.size(); ++i) {
      const bool any_quantized = std::any_of(members[i].begin(), members[i].end(),
                                             [](const GroupMember& m) { return m.scheme.has_value(); });
      PTQ_CHECK(!captures[i]->batches.empty(), "awq: group \"{}\" saw no input during calibration", groups[i].name);
      if (any_quantized) search_group(groups[i], members[i], captures[i]->batches);
      captures[i]->batches.clear();  // free the inputs as soon as the group is done
    }
  }

  void search_group(ScalingGroup& group, const std::vector<GroupMember>& members,
                    const std::vector<torch::Tensor>& inputs) const {
    std::vector<torch::Tensor> reference;
    for (const auto& x : inputs) reference.push_back(group.inspect(x));
    std::vector<torch::Tensor> original;
    for (const auto& m : members) original.push_back(m.linear->weight.clone());

    const torch::Device device = original.front().device();
    const torch::Tensor x_mean = input_abs_mean(inputs).to(device);
    const torch::Tensor w_mean = weight_relative_mean(members).to(device);
    const std::vector<torch::Tensor> candidates = candidate_scales(x_mean, w_mean, options_);

    double best_loss = std::numeric_limits<double>::infinity();
    size_t best = 0;
    for (size_t c = 0; c < candidates.size(); ++c) {
      const torch::Tensor s = candidates[c].unsqueeze(0);
      for (size_t k = 0; k < members.size(); ++k) {
        if (!members[k].scheme) continue;
        install_candidate(*members[k].linear, original[k], s, members[k].scheme->weight);
      }
      double loss = 0.0;
      for (size_t b = 0; b < inputs.size(); ++b)
        loss += (group.inspect(inputs[b]).to(torch::kFloat32) - reference[b].to(torch::kFloat32))
                    .pow(2)
                    .sum()
                    .item<double>();
      if (std::isfinite(loss) && loss < best_loss) {
        best_loss = loss;
        best = c;
      }
    }
    for (size_t k = 0; k < members.size(); ++k) members[k].linear->weight.copy_(original[k]);
    if (best > 0) scale_scaling_group(group, candidates[best]);
    log_debug("awq: {}: {} (loss {:.4g})", group.name,
              best == 0 ? std::string("no scaling")
                        : fmt::format("a = {:.2f}", static_cast<double>(best - 1) / static_cast<double>(options_.grid)),
              best_loss);
  }

  // weight = fake_quantize(original * s) / s, a block of rows at a time: each temporary is a few MiB
  // instead of the whole linear's (four of them for a TinyLlama MLP linear were the peak of a
  // layer-streamed AWQ run). Rows are quantized independently (per-channel and per-group scales; the
  // per-group min/max are exact and the rest is elementwise), so the values are bit-identical to one
  // call -- except for per-tensor scales or precomputed per-row tensors in the spec, done whole.
  static void install_candidate(LinearImpl& linear, const torch::Tensor& original, const torch::Tensor& s,
                                const WeightQuantSpec& spec) {
    const bool rows_independent = spec.group_size != kPerTensor && !spec.scale.defined() &&
                                  !spec.zero_point.defined() && !spec.clip_ratio_per_group.defined();
    const int64_t out = original.size(0);
    const int64_t rows = rows_independent ? std::max<int64_t>(1, (int64_t{1} << 20) / original.size(1)) : out;
    for (int64_t r0 = 0; r0 < out; r0 += rows) {
      const int64_t n = std::min(rows, out - r0);
      const torch::Tensor scaled = original.narrow(0, r0, n).to(torch::kFloat32) * s;
      linear.weight.narrow(0, r0, n).copy_(fake_quantize_weight(scaled, spec) / s);
    }
  }

  void search_clipping(LayerContext& ctx) const {
    std::vector<std::pair<std::shared_ptr<LinearImpl>, ResolvedLinearScheme>> todo;
    for (const auto& linear : ctx.linears) {
      if (linear->quantized || is_query_or_key(linear->path())) continue;
      ResolvedLinearScheme scheme = resolve_linear_scheme(ctx.config, *linear);
      if (scheme.skip || scheme.weight.group_size == kPerTensor) continue;
      todo.emplace_back(linear, std::move(scheme));
    }
    if (todo.empty()) return;
    const int64_t tokens = ctx.inputs.size(0) * ctx.inputs.size(1);
    const int64_t stride = std::max<int64_t>(1, tokens / options_.clip_tokens);
    std::vector<std::shared_ptr<StridedRowCapture>> captures;
    for (auto& [linear, scheme] : todo) {
      captures.push_back(std::make_shared<StridedRowCapture>(stride));
      linear->add_observer(captures.back());
    }
    ctx.run_layer();  // the scaled float layer: the inputs the clipped weights will see
    for (auto& [linear, scheme] : todo) linear->clear_observers();

    for (size_t i = 0; i < todo.size(); ++i) {
      auto& [linear, scheme] = todo[i];
      const torch::Tensor x = captures[i]->rows();
      PTQ_CHECK(x.defined(), "awq: {} saw no input during the clip search", linear->path());
      const torch::Tensor w = linear->weight.to(torch::kFloat32);
      const torch::Tensor ratio =
          search_clip_ratios(w, x, scheme.weight, options_.grid, options_.clip_max_shrink);
      // Clamping to the shrunk range makes plain min/max rounding equal the clipped quantization.
      const int64_t out = w.size(0), groups = ratio.size(1);
      const torch::Tensor blocks = w.view({out, groups, -1});
      const torch::Tensor lo = (blocks.amin(-1).clamp_max(0) * ratio).unsqueeze(-1);
      const torch::Tensor hi = (blocks.amax(-1).clamp_min(0) * ratio).unsqueeze(-1);
      linear->weight.copy_(torch::max(torch::min(blocks, hi), lo).view({out, -1}));
    }
  }

  AwqOptions options_;
};

}  // namespace

torch::Tensor search_clip_ratios(const torch::Tensor& weight, const torch::Tensor& inputs, const WeightQuantSpec& spec,
                                 int64_t grid, double max_shrink) {
  torch::NoGradGuard no_grad;
  const int64_t out = weight.size(0), in = weight.size(1);
  PTQ_CHECK(inputs.dim() == 2 && inputs.size(1) == in, "awq clip search: inputs have shape {}, expected [n, {}]",
            inputs.sizes(), in);
  PTQ_CHECK(spec.group_size != kPerTensor, "awq clip search: per-tensor weights have no per-group clipping");
  const BlockSize block = block_size(spec.group_size, out, in);
  const int64_t cols = block.cols, groups = in / cols, n = inputs.size(0);
  const torch::Tensor w = weight.to(torch::kFloat32);
  // [groups, n, cols]: each group's slice of the inputs, ready for batched products with [groups, cols, out].
  const torch::Tensor x = inputs.to(torch::kFloat32).to(w.device()).view({n, groups, cols}).permute({1, 0, 2});

  torch::Tensor best_error = torch::full({out, groups}, std::numeric_limits<float>::infinity(), w.options());
  torch::Tensor best_ratio = torch::ones({out, groups}, w.options());
  const int64_t steps = static_cast<int64_t>(std::floor(max_shrink * static_cast<double>(grid) + 1e-9));
  // Output rows in chunks bound the [groups, n, rows] products (a 7B MLP would otherwise need GBs).
  const int64_t chunk = std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(1, groups * n));
  // Quantization groups in batches bound them further, to ~8M floats (32 MB; the 64M-element row
  // chunk alone let a TinyLlama MLP product reach 184 MB, the peak of a layer-streamed AWQ run). The
  // split is over bmm's batch dimension only: each group's GEMM keeps its shape and each error
  // element its reduction over the same n tokens, so the ratios are bit-identical to one batch.
  // (Splitting the row chunk instead would change the GEMM shapes, hence possibly the rounding.)
  const auto group_batch = [&](int64_t rows) {
    return std::max<int64_t>(1, (int64_t{8} << 20) / std::max<int64_t>(1, n * rows));
  };
  for (int64_t i = 0; i <= steps; ++i) {
    const double r = 1.0 - static_cast<double>(i) / static_cast<double>(grid);
    WeightQuantSpec clipped = spec;
    clipped.clip_ratio = r;
    const torch::Tensor delta = (fake_quantize_weight(w, clipped) - w).view({out, groups, cols});
    for (int64_t r0 = 0; r0 < out; r0 += chunk) {
      const int64_t rows = std::min(chunk, out - r0);
      const torch::Tensor d = delta.narrow(0, r0, rows).permute({1, 2, 0});  // [groups, cols, rows]
      const int64_t batch = group_batch(rows);
      for (int64_t g0 = 0; g0 < groups; g0 += batch) {
        const int64_t g = std::min(batch, groups - g0);
        // pow_ in place: no second tensor of the product's size for its square.
        const torch::Tensor err = torch::bmm(x.narrow(0, g0, g), d.narrow(0, g0, g)).pow_(2).mean(1).t();  // [rows, g]
        torch::Tensor be = best_error.narrow(0, r0, rows).narrow(1, g0, g);
        torch::Tensor br = best_ratio.narrow(0, r0, rows).narrow(1, g0, g);
        const torch::Tensor better = err < be;
        be.copy_(torch::where(better, err, be));
        br.masked_fill_(better, r);
      }
    }
  }
  return best_ratio;
}

AwqOptions AwqOptions::from_config(const PTQConfig& config) {
  const nlohmann::json args = config.algo_args_for("awq");
  AwqOptions o;
  o.grid = args.at("grid").get<int64_t>();
  o.duo_scaling = args.at("duo_scaling").get<bool>();
  o.clip_search = args.at("clip_search").get<bool>();
  o.clip_max_shrink = args.at("clip_max_shrink").get<double>();
  o.clip_tokens = args.at("clip_tokens").get<int64_t>();
  return o;
}

Awq::Awq(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> Awq::stages() const { return {make_awq_stage(AwqOptions::from_config(config_))}; }

std::shared_ptr<LayerStage> make_awq_stage(const AwqOptions& options) { return std::make_shared<AwqStage>(options); }

}  // namespace ptq
