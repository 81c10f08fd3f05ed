// The clip search of the rtn_mse plugin: for every block of a weight (one output row x one group, or the
// whole row per-channel), the range-shrink ratio that minimises sum |w - q(w)|^norm over the block.
//
// It is llm-compressor's MSE observer (observers/mse.py) applied to weights: the block's min and max are
// both multiplied by a ratio from a grid (1.0 first, then smaller), each candidate is quantized and
// dequantized with exactly the formulas quantize_weight uses, and the ratio with the smallest error wins
// (ties go to the larger ratio, i.e. less clipping). A heavy-tailed block gains the most: plain min/max
// spends most of the few int4 levels on one outlier, clipping it trades a larger error on that one
// value for a finer step on all the others. docs/PLUGINS.md has measurements.
//
// Cost: grid x (weight elements) candidates, each ~10 elementwise ops, evaluated in chunks sized to stay
// in cache on a CPU (~3 s for a [2048, 8192] matrix on one thread with the defaults).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "framework/quantized_weight.h"

namespace ptq_plugins {

struct MseClipOptions {
  int64_t grid = 20;        // ratios evenly spaced from 1.0 down to min_ratio, both included (1: no search)
  double min_ratio = 0.5;   // the strongest shrink tried, in (0, 1]
  double norm = 2.4;        // p of the |error|^p objective (llm-compressor's default 2.4; 2 is MSE)
  // Candidates (ratios x weight elements) evaluated per step; each step holds ~4 float32 temporaries of
  // this size. 0: 2^18 on a CPU (stays in cache: ~2x faster than large chunks), 2^26 on an accelerator.
  int64_t max_chunk_elements = 0;

  // From the config's algo_args["rtn_mse"] (missing keys keep the defaults). Throws ptq::Error naming
  // algo_args.rtn_mse.<key> for an unknown key, a wrong type or a value out of range.
  static MseClipOptions from_json(const nlohmann::json& args);
  std::vector<double> ratios() const;  // the grid, 1.0 first
};

// The best ratio of every block of w [out, in] quantized as `spec` says (spec.clip_ratio applies on top
// of every candidate, as in quantize_weight), as float32 [out / block_rows, n_groups] on w's device:
// what WeightQuantSpec::clip_ratio_per_group takes. spec must not carry precomputed scales.
torch::Tensor search_clip_ratios(const torch::Tensor& w, const ptq::WeightQuantSpec& spec,
                                 const MseClipOptions& options);

}  // namespace ptq_plugins
