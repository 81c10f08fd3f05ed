#include "tools/make_demo_model/lm_training.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <random>

#include "framework/error.h"

namespace ptq::demo {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// lm_head.weight of a tied network is a second registration of the embedding's storage; the
// optimizer must see the embedding once, through model.embed_tokens.weight.
std::vector<std::pair<std::string, torch::Tensor>> trainable(LlamaForCausalLM& network) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : network.named_parameters()) {
    if (item.key() == "lm_head.weight" && network.spec().tie_word_embeddings) continue;
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

// [B, T] inputs and targets from windows starting at `offsets`: inputs are [BOS, t0 .. t(T-2)],
// targets [t0 .. t(T-1)].
std::pair<torch::Tensor, torch::Tensor> make_batch(const std::vector<int32_t>& tokens,
                                                   const std::vector<int64_t>& offsets,
                                                   int64_t seq_len, int64_t bos_id) {
  const int64_t B = int64_t(offsets.size()), T = seq_len;
  auto inputs = torch::empty({B, T}, torch::kInt64);
  auto targets = torch::empty({B, T}, torch::kInt64);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* w = tokens.data() + offsets[b];
    in[b][0] = bos_id;
    for (int64_t t = 1; t < T; ++t) in[b][t] = w[t - 1];
    for (int64_t t = 0; t < T; ++t) tg[b][t] = w[t];
  }
  return {inputs, targets};
}

torch::Tensor next_token_loss(LlamaForCausalLM& network, const torch::Tensor& inputs,
                              const torch::Tensor& targets) {
  auto logits = network.forward(inputs);  // [B, T, V] float32
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                              targets.reshape({-1}));
}

constexpr double kPi = 3.14159265358979323846;

// Linear warmup to lr, then half a cosine down to min_lr at the last step.
double learning_rate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
  double progress = double(step - o.warmup) / double(std::max<int64_t>(1, o.steps - o.warmup));
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(kPi * std::min(1.0, progress)));
}

}  // namespace

void initialize_for_training(LlamaForCausalLM& network, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * double(network.spec().num_layers));
  for (auto& [name, p] : trainable(network)) {
    if (ends_with(name, "norm.weight")) {
      p.fill_(1.0);
    } else if (ends_with(name, ".bias")) {
      p.zero_();
    } else {
      bool residual = ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight");
      p.normal_(0.0, residual ? residual_std : std);
    }
  }
  for (auto& p : network.parameters()) p.set_requires_grad(true);
}

double evaluate_loss(LlamaForCausalLM& network, const std::vector<int32_t>& tokens, int64_t windows,
                     int64_t seq_len, int64_t bos_id) {
  PTQ_CHECK(int64_t(tokens.size()) >= windows * (seq_len - 1) + 1,
            "evaluate_loss: {} tokens are too few for {} windows of {}", tokens.size(), windows,
            seq_len);
  torch::NoGradGuard no_grad;
  const int64_t per_batch = 16;
  double total = 0;
  for (int64_t first = 0; first < windows; first += per_batch) {
    std::vector<int64_t> offsets;
    for (int64_t w = first; w < std::min(windows, first + per_batch); ++w)
      offsets.push_back(w * (seq_len - 1));
    auto [inputs, targets] = make_batch(tokens, offsets, seq_len, bos_id);
    total += next_token_loss(network, inputs, targets).item<double>() * double(offsets.size());
  }
  return total / double(windows);
}

TrainResult train(LlamaForCausalLM& network, const std::vector<int32_t>& train_tokens,
                  const std::vector<int32_t>& val_tokens, const TrainOptions& o) {
  PTQ_CHECK(int64_t(train_tokens.size()) > o.seq_len * 4,
            "train: {} training tokens are too few for windows of {}", train_tokens.size(),
            o.seq_len);
  PTQ_CHECK(o.seq_len <= network.max_positions(),
            "train: seq_len {} exceeds max_position_embeddings {}", o.seq_len,
            network.max_positions());
  // Weight decay on matrices (projections, embeddings), none on norm gains: decaying a gain towards
  // 0 only fights the normalization.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, p] : trainable(network)) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options =
      torch::optim::AdamWOptions(o.lr).betas(std::make_tuple(o.beta1, o.beta2)).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(options).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(options).weight_decay(0.0)));
  torch::optim::AdamW optimizer(groups, options);
  std::vector<torch::Tensor> all = decay;
  all.insert(all.end(), no_decay.begin(), no_decay.end());

  std::mt19937_64 rng(o.seed + 1);
  const uint64_t max_offset = uint64_t(train_tokens.size()) - uint64_t(o.seq_len);
  TrainResult result;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double interval_loss = 0, tail_loss = 0, interval_start = 0;
  int64_t interval_steps = 0, tail_steps = 0;
  const int64_t tail_from = o.steps - std::max<int64_t>(1, o.steps / 10);
  for (int64_t step = 0; step < o.steps; ++step) {
    double lr = learning_rate(o, step);
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    std::vector<int64_t> offsets(o.batch);
    for (auto& off : offsets) off = int64_t(rng() % max_offset);
    auto [inputs, targets] = make_batch(train_tokens, offsets, o.seq_len, o.bos_id);

    optimizer.zero_grad();
    auto loss = next_token_loss(network, inputs, targets);
    loss.backward();
    double grad_norm = torch::nn::utils::clip_grad_norm_(all, o.clip);
    optimizer.step();

    double value = loss.item<double>();
    PTQ_CHECK(std::isfinite(value), "train: the loss became {} at step {} (learning rate {})",
              value, step, lr);
    result.tokens_seen += o.batch * o.seq_len;
    interval_loss += value;
    ++interval_steps;
    if (step >= tail_from) {
      tail_loss += value;
      ++tail_steps;
    }
    if ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
      double now = elapsed();
      double tokens_per_s =
          double(interval_steps * o.batch * o.seq_len) / std::max(1e-9, now - interval_start);
      fmt::print(
          "step {:5d}/{}  loss {:.4f}  lr {:.2e}  grad-norm {:.3f}  {:.0f} tokens/s  {:.0f} s\n",
          step + 1, o.steps, interval_loss / double(interval_steps), lr, grad_norm, tokens_per_s,
          now);
      std::fflush(stdout);
      interval_loss = 0;
      interval_steps = 0;
      interval_start = elapsed();
    }
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || step + 1 == o.steps) {
      double val = evaluate_loss(network, val_tokens, o.eval_windows, o.seq_len, o.bos_id);
      fmt::print("step {:5d}  validation loss {:.4f}  perplexity {:.2f}\n", step + 1, val,
                 std::exp(val));
      std::fflush(stdout);
      result.val_loss = val;
      interval_start = elapsed();  // keep evaluation time out of the tokens/s figure
    }
  }
  result.train_loss = tail_loss / double(std::max<int64_t>(1, tail_steps));
  result.train_eval_loss =
      evaluate_loss(network, train_tokens, o.eval_windows, o.seq_len, o.bos_id);
  result.seconds = elapsed();
  return result;
}

}  // namespace ptq::demo
