#include "examples/plugins/rtn_mse/mse_clip_search.h"

#include <torch/torch.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/quant_types.h"

namespace ptq_plugins {

MseClipOptions MseClipOptions::from_json(const nlohmann::json& args) {
  PTQ_CHECK(args.is_object(), "algo_args.rtn_mse: got {}, expected an object like {{\"grid\": 20}}", args.dump());
  MseClipOptions o;
  for (const auto& [key, value] : args.items()) {
    const std::string name = "algo_args.rtn_mse." + key;
    if (key == "grid") {
      PTQ_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1, "{}: got {}, expected an integer >= 1",
                name, value.dump());
      o.grid = value.get<int64_t>();
    } else if (key == "min_ratio") {
      PTQ_CHECK(value.is_number() && value.get<double>() > 0 && value.get<double>() <= 1,
                "{}: got {}, expected a number in (0, 1]", name, value.dump());
      o.min_ratio = value.get<double>();
    } else if (key == "norm") {
      PTQ_CHECK(value.is_number() && value.get<double>() > 0, "{}: got {}, expected a number > 0", name,
                value.dump());
      o.norm = value.get<double>();
    } else {
      ptq::fail("{}: unknown key; rtn_mse takes grid, min_ratio and norm", name);
    }
  }
  return o;
}

std::vector<double> MseClipOptions::ratios() const {
  std::vector<double> r{1.0};
  for (int64_t i = 1; i < grid; ++i) r.push_back(1.0 - (1.0 - min_ratio) * static_cast<double>(i) / (grid - 1));
  return r;
}

namespace {

// sum over each block of |x - dequantize(quantize(x))|^norm for every candidate ratio: blocks [r, G, C],
// lo/hi [r, G], ratios [k] (effective, i.e. what multiplies lo and hi) -> [k, r, G].
torch::Tensor block_errors(const torch::Tensor& blocks, const torch::Tensor& lo, const torch::Tensor& hi,
                           const torch::Tensor& ratios, const ptq::WeightQuantSpec& spec, double norm) {
  auto r = ratios.view({-1, 1, 1});
  ptq::QParams p = ptq::compute_qparams(lo * r, hi * r, spec.bits, spec.symmetric);  // [k, r, G]
  auto scale = p.scale.unsqueeze(-1);
  auto zero_point = p.zero_point.defined() ? p.zero_point.unsqueeze(-1) : torch::Tensor();
  auto q = ptq::quantize_codes(blocks.unsqueeze(0), scale, zero_point, spec.bits);  // [k, r, G, C]
  if (zero_point.defined()) q.sub_(zero_point);
  auto error = q.mul_(scale).sub_(blocks).abs_();  // (q - z) * s - x, as quantize_weight dequantizes
  // pow(2) is a square in every LibTorch; other exponents cost a transcendental per element.
  return (norm == 2.0 ? error.square_() : error.pow_(norm)).sum(-1);
}

}  // namespace

torch::Tensor search_clip_ratios(const torch::Tensor& w, const ptq::WeightQuantSpec& spec,
                                 const MseClipOptions& options) {
  PTQ_CHECK(w.defined() && w.dim() == 2, "rtn_mse: weight has {} dimensions, expected 2 ([out, in])",
            w.defined() ? w.dim() : 0);
  PTQ_CHECK(!spec.scale.defined(), "rtn_mse: the weight spec carries precomputed scales; nothing to search");
  torch::NoGradGuard no_grad;
  const int64_t out = w.size(0), in = w.size(1);
  const ptq::BlockSize block = ptq::block_size(spec.group_size, out, in);
  const int64_t R = out / block.rows, G = in / block.cols, C = block.rows * block.cols;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(w.device());

  // [R, G, C]: the elements of each block contiguous in the last dimension.
  auto blocks = w.to(torch::kFloat32).view({R, block.rows, G, block.cols}).permute({0, 2, 1, 3}).reshape({R, G, C});
  auto lo = blocks.amin(-1).clamp_max(0);  // [R, G], as quantize_weight computes them
  auto hi = blocks.amax(-1).clamp_min(0);
  const std::vector<double> grid_values = options.ratios();
  const int64_t K = static_cast<int64_t>(grid_values.size());
  auto grid = torch::tensor(grid_values, torch::TensorOptions().dtype(torch::kFloat64)).to(f32);
  // The ratio quantize_weight will apply: clip_ratio * clip_ratio_per_group, multiplied in float32 in
  // that order, so the error measured here is the error of the weight it will produce.
  auto effective = torch::full({K}, spec.clip_ratio, f32) * grid;

  // Chunks of rows x ratios whose temporaries stay within the budget: on a CPU small enough to stay in
  // cache (the search is a chain of cheap elementwise ops, so memory traffic is its cost), on an
  // accelerator large enough to amortise kernel launches.
  const int64_t budget = options.max_chunk_elements > 0 ? options.max_chunk_elements
                         : w.device().is_cpu()         ? int64_t{1} << 18
                                                       : int64_t{1} << 26;
  const int64_t rows_per_chunk = std::clamp<int64_t>(budget / (K * G * C), 1, R);
  const int64_t ratios_per_chunk = std::clamp<int64_t>(budget / (rows_per_chunk * G * C), 1, K);

  auto best_ratio = torch::empty({R, G}, f32);
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_chunk) {
    const int64_t r1 = std::min(R, r0 + rows_per_chunk);
    auto x = blocks.slice(0, r0, r1);
    auto x_lo = lo.slice(0, r0, r1), x_hi = hi.slice(0, r0, r1);
    torch::Tensor best_error, best;
    for (int64_t k0 = 0; k0 < K; k0 += ratios_per_chunk) {
      const int64_t k1 = std::min(K, k0 + ratios_per_chunk);
      auto min_result = block_errors(x, x_lo, x_hi, effective.slice(0, k0, k1), spec, options.norm).min(0);
      auto chunk_error = std::get<0>(min_result);  // first minimum on ties: the larger ratio
      auto chunk_ratio = grid.slice(0, k0, k1).index_select(0, std::get<1>(min_result).flatten()).view_as(chunk_error);
      if (!best.defined()) {
        best_error = chunk_error;
        best = chunk_ratio;
        continue;
      }
      auto better = chunk_error < best_error;  // strict: an earlier (larger) ratio keeps a tie
      best_error = torch::where(better, chunk_error, best_error);
      best = torch::where(better, chunk_ratio, best);
    }
    best_ratio.slice(0, r0, r1).copy_(best);
  }
  return best_ratio;
}

}  // namespace ptq_plugins
