// Rotary position embeddings in Hugging Face's "rotate_half" layout (the first and second halves of each
// head form the rotated pairs). llama2.c checkpoints use interleaved pairs; the llama2.c importer permutes
// their q/k rows into this layout, so one implementation serves both.
#pragma once

#include <torch/types.h>

#include "network_helpers/llama/model_spec.h"

namespace ptq {

// inv_freq[i] = theta^(-2i/D), adjusted by linear or llama3 scaling. float32 [D/2].
torch::Tensor rope_inverse_frequencies(const ModelSpec& spec);

// cos, sin: [B, T, D] float32 for int64 positions [B, T].
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& positions);

// x: [B, H, T, D]; cos, sin: [B, T, D]. Computes in float32, returns x's dtype.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace ptq
