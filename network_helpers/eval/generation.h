// Token generation for any CausalLM: greedy or sampled (temperature, top-k, top-p, seeded), batched with
// left padding, incremental decoding through the network's KV caches, streaming through a callback.
#pragma once

#include <torch/types.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/network_helper.h"
#include "framework/tokenizer.h"

namespace ptq {

// Token lists -> int64 [B, T] left-padded with pad_id, and the [B, T] mask (1 = real token).
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& batch, int64_t pad_id);

// Prompt + generated ids per sequence. A sequence stops at eos (kept in the output) when
// options.stop_at_eos, or after options.max_new_tokens.
std::vector<std::vector<int64_t>> generate_tokens(CausalLM& network, const std::vector<std::vector<int64_t>>& prompts,
                                                  const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                  const GenerationOptions& options, std::optional<int64_t> eos_id);

// Picks the next token from float32 logits [V] (greedy argmax, or sampling with the options' filters).
int64_t pick_token(const torch::Tensor& logits, const GenerationOptions& options, std::mt19937_64& rng);

// Turns a growing list of ids into text pieces, holding back incomplete UTF-8 sequences (a byte-level
// token can end in the middle of a character).
class TextStreamer {
 public:
  TextStreamer(const Tokenizer& tokenizer, std::vector<int64_t> prompt_ids);
  std::string push(int64_t id);  // the new text since the last call (possibly empty)
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;  // prompt + generated
  size_t emitted_ = 0;        // bytes of the decoded text already accounted for (the prompt's included)
};

}  // namespace ptq
