#include "algorithms/gptq.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "algorithms/builtin_algorithms.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

// Cholesky failures before giving up: damp grows 10x each time, so 8 tries span 1e8 x the start.
constexpr int kMaxDampIncreases = 8;
// The range search of the `mse` option (the reference's grid 100, maxshrink 0.8, norm 2.4).
constexpr double kMseGrid = 100.0;
constexpr int kMseSteps = 80;
constexpr double kMseNorm = 2.4;

using HessianObserver = GptqHessianObserver;

// Keeps the first input a linear receives and when it came. Holding the tensor keeps its storage
// alive, so a later input cannot reuse the address and be mistaken for the same tensor.
class FirstInputProbe : public LinearObserver {
 public:
  explicit FirstInputProbe(int64_t* clock) : clock_(clock) {}
  void observe(const torch::Tensor& x) override {
    if (first.defined()) return;
    first = x;
    order = (*clock_)++;
  }
  torch::Tensor first;
  int64_t order = -1;

 private:
  int64_t* clock_;
};

bool same_tensor(const torch::Tensor& a, const torch::Tensor& b) {
  return a.defined() && b.defined() && a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes() &&
         a.strides() == b.strides() && a.scalar_type() == b.scalar_type();
}

// The linears of the layer grouped by identical input, groups in execution order (Llama: {q,k,v},
// {o}, {gate,up}, {down}). One extra run of the layer with cheap probes.
std::vector<std::vector<std::shared_ptr<LinearImpl>>> input_groups(LayerContext& ctx) {
  if (ctx.linears.size() <= 1) return {ctx.linears};
  int64_t clock = 0;
  std::vector<std::shared_ptr<FirstInputProbe>> probes;
  for (auto& linear : ctx.linears) {
    probes.push_back(std::make_shared<FirstInputProbe>(&clock));
    linear->add_observer(probes.back());
  }
  ctx.run_layer();
  for (auto& linear : ctx.linears) linear->clear_observers();

  std::vector<size_t> order(ctx.linears.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    // Linears that never ran keep their place at the end (they fail later, named).
    auto key = [&](size_t i) { return probes[i]->order < 0 ? INT64_MAX : probes[i]->order; };
    return key(a) < key(b);
  });
  std::vector<std::vector<std::shared_ptr<LinearImpl>>> groups;
  std::vector<torch::Tensor> group_inputs;
  for (size_t i : order) {
    size_t g = 0;
    while (g < groups.size() && !same_tensor(group_inputs[g], probes[i]->first)) ++g;
    if (g == groups.size()) {
      groups.emplace_back();
      group_inputs.push_back(probes[i]->first);
    }
    groups[g].push_back(ctx.linears[i]);
  }
  return groups;
}

// min/max of `cols` per row ([out, k] -> [out] each), or over the whole tensor repeated per row
// (per-tensor).
struct RowRange {
  torch::Tensor lo, hi;
};
RowRange row_range(const torch::Tensor& cols, bool per_tensor) {
  if (per_tensor) return {cols.amin().expand({cols.size(0)}), cols.amax().expand({cols.size(0)})};
  return {cols.amin(1), cols.amax(1)};
}

QParams range_params(const RowRange& range, const WeightQuantSpec& spec) {
  return compute_qparams(range.lo.contiguous(), range.hi.contiguous(), spec.bits, spec.symmetric);
}

// Sum over each row of |dequantize(quantize(cols)) - cols|^2.4 under `p` ([out, k] -> [out]).
torch::Tensor rounding_error(const torch::Tensor& cols, const QParams& p, int bits) {
  const torch::Tensor s = p.scale.unsqueeze(1);
  const torch::Tensor z = p.zero_point.defined() ? p.zero_point.unsqueeze(1) : torch::Tensor();
  const torch::Tensor q = quantize_codes(cols, s, z, bits);
  return ((z.defined() ? q - z : q) * s - cols).abs_().pow_(kMseNorm).sum(1);
}

// The reference GPTQ's `mse` quantizer option: per row, the range [lo, hi] shrunk to [p lo, p hi]
// for p = 1, 0.99, ..., 0.21, keeping the p whose rounding error (above) is smallest. The exponent
// 2.4 (not 2) is the reference's: it favours ranges that keep the largest weights accurate. A
// per-tensor range is shared by all rows, so it is not searched.
QParams searched_range_params(const torch::Tensor& cols, const WeightQuantSpec& spec, bool per_tensor) {
  const RowRange range = row_range(cols, per_tensor);
  QParams best = range_params(range, spec);
  if (per_tensor) return best;
  torch::Tensor best_error = rounding_error(cols, best, spec.bits);
  for (int step = 1; step < kMseSteps; ++step) {
    const double shrink = 1.0 - static_cast<double>(step) / kMseGrid;
    QParams candidate =
        compute_qparams(range.lo * shrink, range.hi * shrink, spec.bits, spec.symmetric);
    const torch::Tensor error = rounding_error(cols, candidate, spec.bits);
    const torch::Tensor better = error < best_error;
    best.scale = torch::where(better, candidate.scale, best.scale);
    if (best.zero_point.defined())
      best.zero_point = torch::where(better, candidate.zero_point, best.zero_point);
    best_error = torch::where(better, error, best_error);
  }
  return best;
}

// U with U^T U = (H + damp I)^-1, the upper Cholesky factor GPTQ walks row by row; damp grows 10x
// while a factorisation fails (a singular or badly conditioned H). Undefined when it still fails
// after kMaxDampIncreases (the caller falls back to round-to-nearest).
torch::Tensor inverse_hessian_factor(const torch::Tensor& H, double percent,
                                     const std::string& layer, GptqResult& result) {
  result.damp = percent * H.diagonal().mean().item<double>();
  for (int attempt = 0; attempt <= kMaxDampIncreases; ++attempt) {
    torch::Tensor damped = H.clone();
    damped.diagonal().add_(result.damp);
    auto [lower, info] = torch::linalg_cholesky_ex(damped, /*upper=*/false, /*check_errors=*/false);
    if (info.item<int64_t>() == 0) {
      auto [upper, info_inv] = torch::linalg_cholesky_ex(torch::cholesky_inverse(lower),
                                                         /*upper=*/true, /*check_errors=*/false);
      if (info_inv.item<int64_t>() == 0 && upper.isfinite().all().item<bool>()) return upper;
    }
    if (attempt == kMaxDampIncreases) break;
    result.damp *= 10.0;
    ++result.damp_increases;
  }
  (void)layer;
  return {};
}

}  // namespace

void GptqHessianObserver::observe(const torch::Tensor& x) {
  // float32 before the product: a bf16 sum of 4096 products keeps ~3 significant digits, an fp16
  // one overflows past 65504.
  torch::Tensor rows = x.reshape({-1, x.size(-1)}).to(torch::kFloat32);
  if (!sum_.defined()) sum_ = torch::zeros({x.size(-1), x.size(-1)}, rows.options());
  sum_.addmm_(rows.t(), rows);
  tokens_ += rows.size(0);
}

torch::Tensor GptqHessianObserver::hessian() const {
  return sum_ * (2.0 / static_cast<double>(tokens_));
}

GptqOptions GptqOptions::from_config(const PTQConfig& config) {
  const nlohmann::json args = config.algo_args_for("gptq");
  GptqOptions o;
  o.damp_percent = args.at("damp_percent").get<double>();
  o.block_size = args.at("block_size").get<int64_t>();
  o.act_order = args.at("act_order").get<bool>();
  o.static_groups = args.at("static_groups").get<bool>();
  o.mse = args.at("mse").get<bool>();
  return o;
}

GptqResult gptq_quantize(const torch::Tensor& weight, const torch::Tensor& hessian,
                         const WeightQuantSpec& spec, const GptqOptions& options,
                         const std::string& layer) {
  torch::NoGradGuard no_grad;
  PTQ_CHECK(weight.defined() && weight.dim() == 2, "gptq: {}: weight must be 2-d [out, in], got {}",
            layer, weight.defined() ? weight.sizes() : torch::IntArrayRef{});
  const int64_t out = weight.size(0), in = weight.size(1);
  PTQ_CHECK(
      hessian.defined() && hessian.dim() == 2 && hessian.size(0) == in && hessian.size(1) == in,
      "gptq: {}: Hessian has shape {}, expected [{}, {}]", layer,
      hessian.defined() ? hessian.sizes() : torch::IntArrayRef{}, in, in);
  PTQ_CHECK(!spec.scale.defined() && spec.clip_ratio == 1.0 && !spec.clip_ratio_per_group.defined(),
            "gptq: {}: GPTQ computes its own scales; precomputed scales and clip ratios are not "
            "supported",
            layer);
  PTQ_CHECK(options.block_size >= 1, "gptq: {}: block_size {} must be >= 1", layer,
            options.block_size);
  const BlockSize block = block_size(spec.group_size, out, in);  // validates the group size
  const bool per_tensor = spec.group_size == kPerTensor;
  const int64_t group_cols = block.cols, groups = in / group_cols;

  GptqResult result;
  torch::Tensor W = weight.to(torch::kFloat32).clone().contiguous();
  torch::Tensor H = hessian.to(torch::kFloat32).to(W.device()).clone();
  PTQ_CHECK(H.isfinite().all().item<bool>(),
            "gptq: {}: the Hessian has non-finite entries (NaN/inf inputs)", layer);

  // An input that is always 0 contributes nothing: its weights do not matter, so they are set to 0
  // (exact in every scheme) and H_ii = 1 keeps the factorisation defined.
  torch::Tensor dead = H.diagonal().eq(0);
  result.dead_columns = dead.sum().item<int64_t>();
  if (result.dead_columns > 0) {
    H.diagonal().masked_fill_(dead, 1.0);
    W.masked_fill_(dead.unsqueeze(0), 0.0);
  }

  // Group parameters [out, groups]; the zero point is a float holding integers (compute_qparams).
  torch::Tensor scale = torch::empty({out, groups}, W.options());
  torch::Tensor zero = spec.symmetric ? torch::Tensor() : torch::empty({out, groups}, W.options());
  auto set_group = [&](int64_t g, const torch::Tensor& cols) {
    QParams p = options.mse ? searched_range_params(cols, spec, per_tensor)
                            : range_params(row_range(cols, per_tensor), spec);
    scale.select(1, g).copy_(p.scale);
    if (zero.defined()) zero.select(1, g).copy_(p.zero_point);
  };
  // Per-tensor has one range over all rows, only meaningful before any update: always static.
  const bool static_groups = options.static_groups || per_tensor;
  std::vector<char> have_group(groups, static_groups ? 1 : 0);
  if (static_groups)
    for (int64_t g = 0; g < groups; ++g) set_group(g, W.narrow(1, g * group_cols, group_cols));

  // Act-order: the columns with the largest H_ii (most input energy) go first, while the most later
  // columns remain to absorb their error. W and H are permuted; groups stay in the original order.
  torch::Tensor perm = torch::arange(in, torch::TensorOptions().dtype(torch::kInt64));
  if (options.act_order)
    perm = std::get<1>(
        torch::sort(H.diagonal().cpu(), /*stable=*/true, /*dim=*/0, /*descending=*/true));
  const torch::Tensor invperm = torch::argsort(perm);
  const torch::Tensor perm_dev = perm.to(W.device()), invperm_dev = invperm.to(W.device());
  if (options.act_order) {
    W = W.index_select(1, perm_dev);
    H = H.index_select(0, perm_dev).index_select(1, perm_dev);
  }
  const std::vector<int64_t> original(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + in);

  const torch::Tensor U = inverse_hessian_factor(H, options.damp_percent, layer, result);
  H = torch::Tensor();
  if (!U.defined()) {
    // No dampening made H positive definite: GPTQ's error feedback is undefined, so the layer is
    // rounded to nearest, with the same scheme (the checkpoint layout does not change).
    result.rtn_fallback = fmt::format(
        "gptq: the Hessian is not positive definite even with dampening {:.3g} ({} x10 increases "
        "over damp_percent {}): rounded to nearest instead",
        result.damp, kMaxDampIncreases, options.damp_percent);
    result.weight = quantize_weight(weight.to(torch::kFloat32), spec);
    return result;
  }

  // Q: the dequantized weights, in the permuted column order.
  torch::Tensor Q = torch::empty_like(W);
  for (int64_t i1 = 0; i1 < in; i1 += options.block_size) {
    const int64_t count = std::min(options.block_size, in - i1);
    // A view: updates inside the block land in W, so "current weights" below include them.
    torch::Tensor W1 = W.narrow(1, i1, count);
    torch::Tensor U1 = U.narrow(0, i1, count).narrow(1, i1, count);
    torch::Tensor err_block = torch::empty({out, count}, W.options());
    for (int64_t i = 0; i < count; ++i) {
      const int64_t g = original[i1 + i] / group_cols;
      if (!have_group[g]) {
        // The group's columns as they stand now: none quantized yet (this is the first to come up),
        // all carrying the error updates applied so far.
        set_group(g, W.index_select(1, invperm_dev.narrow(0, g * group_cols, group_cols)));
        have_group[g] = 1;
      }
      torch::Tensor s = scale.select(1, g);
      torch::Tensor z = zero.defined() ? zero.select(1, g) : torch::Tensor();
      torch::Tensor w = W1.select(1, i);
      torch::Tensor q = quantize_codes(w, s, z, spec.bits);
      torch::Tensor dq =
          (z.defined() ? q - z : q) * s;  // dequantize exactly as QuantizedWeight does
      Q.select(1, i1 + i).copy_(dq);
      // The optimal compensation of column i's error on the block's remaining columns.
      torch::Tensor err = (w - dq) / U1[i][i];
      W1.narrow(1, i, count - i)
          .addr_(err, U1.select(0, i).narrow(0, i, count - i), /*beta=*/1, /*alpha=*/-1);
      err_block.select(1, i).copy_(err);
    }
    // Lazy batch update: the block's accumulated error reaches the later columns in one matmul.
    const int64_t rest = in - i1 - count;
    if (rest > 0)
      W.narrow(1, i1 + count, rest)
          .sub_(err_block.matmul(U.narrow(0, i1, count).narrow(1, i1 + count, rest)));
  }
  if (options.act_order) Q = Q.index_select(1, invperm_dev);

  // Re-quantizing the dequantized values with GPTQ's own parameters reproduces its codes exactly
  // ((q - z) * s / s rounds back to q - z), and gives the packed layout of the checkpoint format.
  WeightQuantSpec fixed = spec;
  fixed.scale = scale;
  fixed.zero_point = zero;
  result.weight = quantize_weight(Q, fixed);
  return result;
}

namespace {

class GptqStage : public LayerStage {
 public:
  explicit GptqStage(GptqOptions options) : options_(options) {}
  std::string name() const override { return "gptq"; }
  bool needs_calibration_data() const override { return true; }

  void process(LayerContext& ctx) override {
    PTQ_CHECK(ctx.has_data(), "gptq: layer {} has no calibration inputs", ctx.layer_index);
    std::map<const LinearImpl*, ResolvedLinearScheme> todo;
    for (auto& target : rounding_targets(ctx.linears, ctx.config, ctx.report))
      todo.emplace(target.linear.get(), std::move(target.scheme));
    if (todo.empty()) return;  // e.g. the head with lm_head blacklisted: no run at all

    for (auto& group : input_groups(ctx)) {
      std::vector<std::shared_ptr<LinearImpl>> members;
      for (auto& linear : group)
        if (todo.count(linear.get())) members.push_back(linear);
      if (members.empty()) continue;
      // The group shares one input, so one Hessian serves every member. The run sees the earlier
      // groups already fake-quantized: the inputs the deployed layer will really produce.
      auto observer = std::make_shared<HessianObserver>();
      members.front()->add_observer(observer);
      ctx.run_layer();
      members.front()->clear_observers();
      PTQ_CHECK(observer->tokens() > 0,
                "gptq: {} received no calibration inputs when its layer ran",
                members.front()->path());
      const torch::Tensor H = observer->hessian();
      for (auto& linear : members) quantize_one(*linear, H, todo.at(linear.get()), ctx.report);
    }
  }

 private:
  void quantize_one(LinearImpl& linear, const torch::Tensor& H, const ResolvedLinearScheme& scheme,
                    QuantizationReport& report) const {
    GptqResult r = gptq_quantize(linear.weight, H, scheme.weight, options_, linear.path());
    const bool fell_back = !r.rtn_fallback.empty();
    install_quantized_weight(linear, std::move(r.weight), scheme, fell_back ? "rtn" : "gptq",
                             report);
    std::string note;
    if (fell_back) {
      // Counted and printed with the other fallbacks (QuantizationReport::fallback_count).
      note = r.rtn_fallback;
      log_warning("{}: {}", linear.path(), note);
    } else if (r.damp_increases > 0) {
      note = fmt::format(
          "gptq: Hessian needed dampening {:.3g} ({} x10 increases over damp_percent {})", r.damp,
          r.damp_increases, options_.damp_percent);
      log_warning("{}: {}", linear.path(), note);
    }
    if (r.dead_columns > 0)
      log_info("{}: gptq: {} input channels were always 0; their weights are 0", linear.path(),
               r.dead_columns);
    if (note.empty()) return;
    // The report has no free-form note, so the damp increase goes with the fallback notes: it is
    // printed and counted with them.
    if (const LayerRecord* found = report.find(linear.path())) {
      LayerRecord record = *found;
      record.fallback = record.fallback.empty() ? note : record.fallback + "; " + note;
      report.record(std::move(record));
    }
  }

  GptqOptions options_;
};

}  // namespace

Gptq::Gptq(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::shared_ptr<LayerStage>> Gptq::stages() const {
  return {make_gptq_stage(GptqOptions::from_config(config_))};
}

std::shared_ptr<LayerStage> make_gptq_stage(const GptqOptions& options) {
  return std::make_shared<GptqStage>(options);
}

}  // namespace ptq
