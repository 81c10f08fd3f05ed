#include "network_helpers/llama/rotary.h"

#include <torch/torch.h>

#include <cmath>

namespace ptq {

torch::Tensor rope_inverse_frequencies(const ModelSpec& spec) {
  const int64_t D = spec.head_dim;
  // Same float64 -> float32 route as transformers: arange(0, D, 2) / D as float, theta ** (...).
  auto exponent = torch::arange(0, D, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(D);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(spec.rope_theta, torch::kFloat32), exponent);
  const RopeScaling& rs = spec.rope_scaling;
  if (rs.type == "linear") {
    inv_freq = inv_freq / rs.factor;
  } else if (rs.type == "llama3") {
    // Llama 3.1: long wavelengths are slowed down by `factor`, short ones kept, the band between blended.
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_len / rs.low_freq_factor;
    const double high_wavelen = old_len / rs.high_freq_factor;
    auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq / rs.factor, inv_freq);
    auto smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  return inv_freq.to(torch::kFloat32);
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& positions) {
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(positions.device()).view({1, 1, -1});
  auto emb = torch::cat({freqs, freqs}, -1);  // [B, T, D]
  return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto xf = x.to(torch::kFloat32);
  auto rotated = torch::cat({xf.narrow(-1, half, half).neg(), xf.narrow(-1, 0, half)}, -1);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // broadcast over heads
  return (xf * c + rotated * s).to(x.scalar_type());
}

}  // namespace ptq
