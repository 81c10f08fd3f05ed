// A decoder-only language model as the framework sees it: a whole-network forward (with or without a KV
// cache), and layer-by-layer access for the calibration driver, which runs one decoder layer at a time.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "framework/kv_cache.h"
#include "framework/ptq_config.h"

namespace ptq {

class CausalLM : public torch::nn::Module {
 public:
  // input_ids: int64 [B, T]. Without a state: one causal pass from position 0 (attention_mask, if given,
  // is [B, T] with 1 for real tokens and 0 for left padding). With a state: continues each sequence of
  // the state (a prefill when the state is empty); attention_mask then covers only the new T tokens.
  // Returns logits [B, T, vocab] in float32.
  virtual torch::Tensor forward(const torch::Tensor& input_ids, DecodeState* state = nullptr,
                                const torch::Tensor& attention_mask = {}) = 0;
  // The logits of the last position only, [B, 1, vocab] float32, as forward() would give them: what
  // generation needs. A prefill of T tokens then runs the final norm and lm_head on B rows instead of
  // B * T (TinyLlama, T = 512: 33.5 of the lm_head's GFLOP, ~40% of a W8A8 prefill's time).
  virtual torch::Tensor forward_last(const torch::Tensor& input_ids, DecodeState* state = nullptr,
                                     const torch::Tensor& attention_mask = {}) {
    torch::Tensor all = forward(input_ids, state, attention_mask);
    return all.narrow(1, all.size(1) - 1, 1);
  }
  // An empty generation state for `batch` sequences, with storage for `capacity` tokens.
  virtual std::unique_ptr<DecodeState> new_state(int64_t batch, int64_t capacity) = 0;

  // Layer-wise access (calibration driver, algorithms).
  virtual int64_t num_decoder_layers() const = 0;
  virtual std::shared_ptr<torch::nn::Module> decoder_layer(int64_t index) = 0;
  virtual torch::Tensor embed(const torch::Tensor& input_ids) = 0;  // [B, T] -> hidden [B, T, C]
  // One decoder layer, causal, no cache. position_ids: int64 [B, T].
  virtual torch::Tensor decoder_layer_forward(int64_t index, const torch::Tensor& hidden,
                                              const torch::Tensor& position_ids) = 0;
  virtual torch::Tensor logits(const torch::Tensor& hidden) = 0;  // final norm + lm_head, float32

  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_positions() const = 0;
  virtual torch::ScalarType compute_dtype() const = 0;
  virtual std::string architecture() const = 0;
  // The Hugging Face config.json this network stands for (save_checkpoint writes it back, with a
  // quantization_config block added).
  virtual nlohmann::json hf_config() const = 0;

  // The folder the network was loaded from ("" when built in code); save_checkpoint copies the
  // tokenizer files from it.
  std::filesystem::path source_dir;
  // Set by Algorithm::apply: the recipe the network is quantized with (DEPLOY or QUANTIZE). It is what
  // save_checkpoint records and what load_quantized rebuilds the structure from.
  std::optional<PTQConfig> quantization;
};

}  // namespace ptq
