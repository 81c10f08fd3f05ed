// The calibration driver: runs LayerStages over a network one decoder layer at a time.
//
//   1. sample calibration sequences from a text file (config.calibration: file, samples, seq_len, seed)
//   2. embed them: the inputs of decoder layer 0, [N, T, C]
//   3. for each decoder layer: every stage processes it (statistics, then its transformation), then the
//      layer runs on its inputs with its new (fake-quantized) weights and the outputs become the next
//      layer's inputs -- so later layers calibrate on what the quantized network really produces
//   4. the head (final norm + linears outside the decoder layers) gets the same treatment
//
// Peak memory beyond the weights is two [N, T, C] activation sets plus one layer's working set
// (layers run over mini-batches of samples). A pass whose stages need no data skips 1-2 and gives the
// stages undefined inputs (RTN).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/algorithm.h"
#include "framework/tokenizer.h"

namespace ptq {

// Token sequences [N, T] (int64) drawn from a text: the whole text is tokenized once (no special
// tokens), then N windows of T tokens start at seeded random offsets (distinct windows while the text
// is long enough). Errors name the file when it is missing, empty or shorter than T tokens.
torch::Tensor sample_calibration_tokens(const std::string& text_file, const Tokenizer& tokenizer,
                                        const CalibrationConfig& calibration);

// The calibration file a config means: calibration.dataset if set, else `fallback` (the CLI's --calib),
// else ../shared/data/corpus/train_00.txt next to the source tree. Throws when none exists.
std::string resolve_calibration_file(const CalibrationConfig& calibration, const std::string& fallback = "");

// The step before decoder layer 0 in LayerwiseOptions' hooks: embedding the calibration tokens.
inline constexpr int64_t kEmbeddingStep = -2;

struct LayerwiseOptions {
  // Samples per forward call of one layer (bounds the activation working set).
  int64_t batch_size = 8;
  // Calibration tokens [N, T]; undefined: sampled from the config's file when a stage needs data.
  torch::Tensor tokens;

  // ---- layer-streamed and resumed runs (framework/stream_quantize.h) ----
  // Each step -- kEmbeddingStep, the decoder layers 0..L-1, then kHeadLayer -- is bracketed by
  // before_step(step) (load its weights) and after_step(step, next_inputs) (write its tensors,
  // release them, record progress); next_inputs are the next layer's calibration inputs (the
  // embeddings after kEmbeddingStep, the layer's outputs after a layer; undefined for the head and in
  // a data-free pass).
  std::function<void(int64_t step)> before_step;
  std::function<void(int64_t step, const torch::Tensor& next_inputs)> after_step;
  // NaN/Inf guard: a decoder layer whose quantized outputs are not finite gets the linears that did it
  // kept in float and is quantized again (framework/non_finite_fallback.h); false: it is an error
  // naming them, as it always was.
  bool float_fallback = true;
  // For that second pass: puts the float weights of a decoder layer back (a streamed run reads them
  // from the file again). Unset: the driver copies each decoder layer's parameters before its stages
  // run (one layer's weights of extra memory) and restores the copy.
  std::function<void(int64_t layer)> reload_step;
  // Resume: the steps before decoder layer `first_layer` are done (the embedding step too);
  // first_inputs are its calibration inputs [N, T, C] (required when a stage needs data) and
  // initial_report is what the report held after the last finished layer.
  int64_t first_layer = 0;
  torch::Tensor first_inputs;
  std::optional<QuantizationReport> initial_report;
};

// Runs `stages` over every decoder layer and then the head, as described above.
void run_layerwise(CausalLM& net, NetworkHelper& helper, const PTQConfig& config,
                   const std::vector<std::shared_ptr<LayerStage>>& stages, QuantizationReport& report,
                   const LayerwiseOptions& options = {});

// The linears of decoder layer `index` (kHeadLayer: those under no decoder layer), in execution order.
std::vector<std::shared_ptr<LinearImpl>> layer_linears(CausalLM& net, int64_t index);

}  // namespace ptq
