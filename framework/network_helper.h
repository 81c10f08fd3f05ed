// NetworkHelper: everything an algorithm needs to know about a model family, behind one interface
// (MindSpore Golden Stick's NetworkHelper plus the scaling groups). Algorithms are written against this
// interface only, so a new model family needs a new helper and no change in any algorithm.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/linear.h"
#include "framework/tokenizer.h"

namespace ptq {

// "This op feeds these linears": the unit of SmoothQuant / AWQ scaling. Scaling the consumers' input
// columns by s and the producer's output channels by 1/s leaves the network's function unchanged.
struct ScalingGroup {
  std::string name;              // e.g. "model.layers.3.input_layernorm -> q_proj,k_proj,v_proj"
  std::string producer_path;     // the norm or linear whose output channels are divided by s
  // The producer's parameters indexed by output channel: a norm's weight [C] (and bias [C] for LayerNorm),
  // or a linear's weight [C, in] (and bias [C]). They share storage with the network: edits are in place.
  torch::Tensor producer_weight;
  torch::Tensor producer_bias;   // may be undefined
  std::vector<std::shared_ptr<LinearImpl>> consumers;  // their weights' input columns are multiplied by s
  // The output of the block the group feeds, from the group's input (e.g. the whole attention for q,k,v,
  // o_proj itself for v -> o). AWQ compares this output before and after quantization.
  std::function<torch::Tensor(const torch::Tensor& group_input)> inspect;
};

struct GenerationOptions {
  int64_t max_new_tokens = 32;
  bool greedy = true;
  double temperature = 1.0;
  int64_t top_k = 0;      // 0: off
  double top_p = 1.0;     // 1.0: off
  uint64_t seed = 0;
  bool stop_at_eos = true;
  // Called with each new token of each sequence as it is produced (streaming).
  std::function<void(int64_t sequence, int64_t token)> on_token;
};

class NetworkHelper {
 public:
  virtual ~NetworkHelper() = default;

  // Golden Stick's interface.
  virtual std::shared_ptr<CausalLM> create_network() = 0;
  // A model spec value by its config.json name ("hidden_size", "num_hidden_layers", ...).
  virtual nlohmann::json get_spec(const std::string& name) const = 0;
  virtual std::shared_ptr<Tokenizer> create_tokenizer() = 0;
  // Token id lists -> int64 [B, T] left-padded, and the matching [B, T] attention mask.
  virtual std::pair<torch::Tensor, torch::Tensor> assemble_inputs(
      const std::vector<std::vector<int64_t>>& batch) const = 0;
  // Prompts -> prompt + generated ids, one list per prompt.
  virtual std::vector<std::vector<int64_t>> generate(CausalLM& network,
                                                     const std::vector<std::vector<int64_t>>& prompts,
                                                     const GenerationOptions& options) = 0;

  // What the algorithms need.
  virtual std::vector<ScalingGroup> scaling_groups(CausalLM& network, int64_t layer) = 0;
};

}  // namespace ptq
