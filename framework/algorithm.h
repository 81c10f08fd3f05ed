// The Algorithm lifecycle (MindSpore Golden Stick's apply -> convert) and the registry of algorithms.
//
//   Algorithm algo(cfg);     // RoundToNearest, PTQ (composes what cfg asks for), a plugin's algorithm
//   algo.apply(net, helper); // QUANTIZE: calibrate + fake-quantize. DEPLOY: build the quantized structure
//   algo.convert(net);       // swap in the backend's real kernels
//
// apply and convert run once each, in that order; anything else is a ptq::Error that says what was
// called and what was expected. Quantization work is done by LayerStages that the calibration driver
// (framework/calibration.h) runs one decoder layer at a time, so an algorithm is mostly its stages and
// composing algorithms (PTQ) is concatenating stages: outlier suppression -> rounding -> activation and
// KV-cache calibration, all in one pass over the layers.
//
// Registry: built-in algorithms are registered by register_builtin_algorithms() (declared here, defined
// in algorithms/, which knows the list: the same explicit-list reason as backends, see backend.h);
// plugins register theirs from ptq_plugin_init (framework/plugin.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/network_helper.h"
#include "framework/ptq_config.h"
#include "framework/quantization_report.h"

namespace ptq {

struct LayerwiseOptions;  // framework/calibration.h

// What a stage sees of one decoder layer (or, once at the end, of the head: the linears outside the
// decoder layers, e.g. an un-blacklisted lm_head).
struct LayerContext {
  CausalLM& net;
  NetworkHelper& helper;
  const PTQConfig& config;
  QuantizationReport& report;
  int64_t layer_index;  // 0..L-1, or kHeadLayer
  std::vector<std::shared_ptr<LinearImpl>> linears;  // in execution order
  // Calibration inputs of the layer, [N, T, C] in the compute dtype (the head: the final hidden states,
  // before the final norm); undefined in a data-free pass.
  torch::Tensor inputs;
  torch::Tensor position_ids;  // int64 [1, T]
  // Runs the layer over all `inputs` in mini-batches with the current kernels and observers. Returns
  // the outputs [N, T, C] for a decoder layer; for the head it runs final norm + lm_head and returns
  // an undefined tensor (the logits of every sample would not fit in memory).
  std::function<torch::Tensor()> run_layer;

  bool has_data() const { return inputs.defined(); }
  bool is_head() const;
};
inline constexpr int64_t kHeadLayer = -1;

// One algorithm's work on one layer. Stages run in the order PTQ composes them; a stage sees the
// weights as the previous stages left them.
class LayerStage {
 public:
  virtual ~LayerStage() = default;
  virtual std::string name() const = 0;
  virtual bool needs_calibration_data() const { return false; }
  virtual void process(LayerContext& ctx) = 0;
};

class Algorithm {
 public:
  explicit Algorithm(PTQConfig config);
  virtual ~Algorithm();
  Algorithm(const Algorithm&) = delete;
  Algorithm& operator=(const Algorithm&) = delete;

  // The registry name ("rtn", "ptq", "smooth_quant", a plugin's name).
  virtual std::string name() const = 0;

  // QUANTIZE: runs the stages over the network (calibration data from config.calibration when a stage
  // needs it) and leaves every quantized linear fake-quantized. DEPLOY: gives every linear the config
  // says to quantize an empty quantized form of the right shape, for load_checkpoint to fill.
  void apply(CausalLM& net, NetworkHelper& helper);
  void apply(const std::shared_ptr<CausalLM>& net, NetworkHelper& helper) { apply(*net, helper); }
  // QUANTIZE with the calibration driver's options: hooks around each layer, resuming
  // (framework/calibration.h; layer-streamed quantization, framework/stream_quantize.h, uses them).
  void apply(CausalLM& net, NetworkHelper& helper, const LayerwiseOptions& options);
  // Asks the backend (config.backend; "auto" picks the best that supports each layer) for the real
  // kernel of every quantized linear and releases the float weights.
  void convert(CausalLM& net);
  void convert(const std::shared_ptr<CausalLM>& net) { convert(*net); }

  const PTQConfig& config() const { return config_; }
  // What apply quantized how (and every fallback); convert adds the backend of each layer.
  const QuantizationReport& report() const { return report_; }

  // The stages this algorithm contributes to a layer-wise pass, in order.
  virtual std::vector<std::shared_ptr<LayerStage>> stages() const = 0;

 protected:
  PTQConfig config_;
  QuantizationReport report_;

 private:
  enum class Step { kCreated, kApplied, kConverted };
  Step step_ = Step::kCreated;
  const CausalLM* applied_to_ = nullptr;
};

// ---- registry --------------------------------------------------------------------------------------

using AlgorithmFactory = std::function<std::unique_ptr<Algorithm>(const PTQConfig&)>;

struct AlgorithmInfo {
  std::string name;
  std::string description;  // one line, for `ptq algorithms` and error messages
  AlgorithmFactory factory;
};

// Adds (or replaces, by name) an algorithm. Thread-safe.
void register_algorithm(AlgorithmInfo info);
bool unregister_algorithm(const std::string& name);
// Throws listing the registered names (and hinting at --plugin) when `name` is unknown.
std::unique_ptr<Algorithm> create_algorithm(const std::string& name, const PTQConfig& config);
bool has_algorithm(const std::string& name);
std::vector<AlgorithmInfo> available_algorithms();

// Registers RoundToNearest, PTQ and the other built-ins (defined in algorithms/); idempotent.
void register_builtin_algorithms();

}  // namespace ptq
