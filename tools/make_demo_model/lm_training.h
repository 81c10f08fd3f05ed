// Next-token training of a ptq::LlamaForCausalLM from scratch on a token stream, on CPU in float32:
// AdamW (decoupled weight decay on matrices only), linear warmup then cosine decay of the learning
// rate, global gradient-norm clipping. Batches are windows at random offsets of the stream, each
// led by the BOS token (as the tokenizer's post-processor adds it at inference). Deterministic for
// a given seed and thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "network_helpers/llama/llama_model.h"

namespace ptq::demo {

struct TrainOptions {
  int64_t steps = 1500;
  int64_t batch = 4;      // sequences per step
  int64_t seq_len = 512;  // tokens per sequence, BOS included (= max_position_embeddings: every
                          // position the config promises is trained)
  double lr = 2e-3;       // peak learning rate
  double min_lr = 2e-4;   // the cosine ends here
  int64_t warmup = 50;    // steps of linear warmup from 0
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  double clip = 1.0;  // max global L2 norm of the gradients
  uint64_t seed = 1234;
  int64_t log_every = 10;
  int64_t eval_every = 250;   // validation loss every this many steps (and at the end)
  int64_t eval_windows = 64;  // validation windows of seq_len - 1 text tokens
  int64_t bos_id = 0;
};

struct TrainResult {
  double train_loss = 0;  // mean training loss over the last 10% of steps
  double train_eval_loss =
      0;  // the validation protocol applied to the start of the training stream
  double val_loss = 0;
  double seconds = 0;  // wall time of the training loop, evaluations included
  int64_t tokens_seen = 0;
};

// Draws normal(0, 0.02) weights (GPT-2's init; the output projections o_proj and down_proj scaled
// by 1/sqrt(2 * layers) so that the residual stream does not grow with depth), ones for the norms,
// and makes every parameter trainable.
void initialize_for_training(LlamaForCausalLM& network, uint64_t seed);

// Mean next-token loss (nats) over `windows` consecutive, non-overlapping windows from the start of
// `tokens`, each [BOS] + seq_len - 1 tokens, the same windows on every call.
double evaluate_loss(LlamaForCausalLM& network, const std::vector<int32_t>& tokens, int64_t windows,
                     int64_t seq_len, int64_t bos_id);

TrainResult train(LlamaForCausalLM& network, const std::vector<int32_t>& train_tokens,
                  const std::vector<int32_t>& val_tokens, const TrainOptions& options);

}  // namespace ptq::demo
