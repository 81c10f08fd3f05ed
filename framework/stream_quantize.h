// Layer-streamed quantization: quantize a model whose float weights do not fit in memory, and resume
// a run that was interrupted.
//
// The network is built with placeholder weights (framework/deferred_weights.h: the loader's
// LoadOptions::defer_weights). The calibration driver then runs as always, one step at a time --
// embedding the calibration tokens, each decoder layer, the head -- and around each step this module
//   1. loads the step's float weights from the memory-mapped safetensors (converted to the compute
//      dtype, then the mapped pages are given back to the kernel),
//   2. lets the stages run (statistics, outlier suppression, rounding) and the layer produce the next
//      layer's calibration inputs,
//   3. writes the step's final tensors -- exactly those save_checkpoint would write for them -- into
//      a part file "<out>.partial/parts/<step>.safetensors", and records the progress
//      ("<out>.partial/progress.json": the fingerprint of the run, the layers done, the report so far;
//      the next layer's calibration inputs in "<out>.partial/inputs-<layer>.safetensors"),
//   4. releases the step's float and quantized tensors.
// At the end the checkpoint is assembled from the parts with SafetensorsShardWriter::add_from_file
// (bytes copied file to file, never all in memory) into the atomically written folder, in the order
// save_checkpoint adds tensors, so the folder is byte-for-byte the one `PTQ::apply + convert +
// save_checkpoint` writes for the same float model, recipe and calibration. Then "<out>.partial" is
// removed.
//
// Memory: one decoder layer's float weights and their quantized form, the calibration activations
// (two [N, T, C] sets) and the layer's working set; the embedding and the head are loaded only for
// their own steps. Nothing of the model accumulates (docs/ROBUSTNESS.md has measurements).
//
// Resume: a run started with `resume` finds "<out>.partial/progress.json", checks that its fingerprint
// -- a hash of the recipe, the model (config.json, the safetensors headers, sizes and modification
// times), the calibration tokens, the compute dtype, the device and this ptq's version -- is the one
// this run computes, and continues after the last layer recorded. Each record is written after the
// files it names and renamed into place, so a run killed at any instant (SIGKILL, power loss) leaves a
// consistent record of the last finished step. The result is bit-identical to an uninterrupted run
// (tests/core/test_stream_quantize.cc kills one with SIGKILL and compares).
//
// Limits: stages must only change the parameters of the step they process (true of every built-in
// algorithm: they edit a layer's linears and the producers of its scaling groups, which lie inside the
// layer); a stage that changed the embedding after its step, or a tied lm_head in place, is detected
// (checksum) and refused. The report has no backend column (convert() is not run: the checkpoint does
// not depend on it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "framework/algorithm.h"
#include "framework/safetensors.h"

namespace ptq {

struct StreamQuantizeOptions {
  std::filesystem::path out;  // the checkpoint folder (replaced atomically at the end)
  // Continue the run recorded in "<out>.partial" (refused when its fingerprint differs). Without it,
  // an existing "<out>.partial" is discarded and the run starts from the beginning.
  bool resume = false;
  uint64_t max_shard_bytes = SafetensorsShardWriter::kDefaultMaxShardBytes;
  // Where each step's weights go (the compute dtype is the network's).
  torch::Device device = torch::kCPU;
  // Samples per forward call of one layer (LayerwiseOptions::batch_size).
  int64_t batch_size = 8;
  // LayerwiseOptions::float_fallback: keep a linear whose quantized outputs are not finite in float
  // (false: the guard's error).
  bool float_fallback = true;
  // Called after the progress of a step (kEmbeddingStep, a layer, kHeadLayer) is recorded (tests use
  // it to interrupt a run at a known point).
  std::function<void(int64_t step)> after_step_recorded;
};

struct StreamQuantizeResult {
  int64_t resumed_at = 0;     // the first decoder layer this call processed (0: a fresh run)
  uint64_t tensor_bytes = 0;  // bytes of the checkpoint's tensors
  size_t tensors = 0;
  QuantizationReport report;  // algo.report(), or the recorded one when only the assembly was left
};

// "<out>.partial": where an unfinished run keeps its progress.
std::filesystem::path stream_progress_dir(const std::filesystem::path& out);

// Quantizes `net` -- built with placeholder weights, its float weights in the safetensors of
// net.source_dir -- with `algo` (QUANTIZE mode; apply() must not have been called) and writes the
// checkpoint to options.out. Afterwards net.quantization holds the recipe and the result the report;
// the network's weights are placeholders again.
StreamQuantizeResult quantize_streamed(Algorithm& algo, CausalLM& net, NetworkHelper& helper,
                                       const StreamQuantizeOptions& options);

}  // namespace ptq
