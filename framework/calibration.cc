#include "framework/calibration.h"

#include <fmt/format.h>
#include <ptq/build_config.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/non_finite_fallback.h"
#include "framework/progress.h"

namespace ptq {
namespace fs = std::filesystem;
namespace {

// Calibration needs samples * seq_len tokens; a few bytes per token and a margin for distinct windows
// bound what is worth tokenizing of a large corpus file (train_00.txt is 35 MB).
std::string read_calibration_prefix(const std::string& file, const CalibrationConfig& calibration) {
  std::ifstream in(file, std::ios::binary);
  PTQ_CHECK(in, "calibration data \"{}\": cannot open the file", file);
  const int64_t wanted = std::max<int64_t>(int64_t{4} << 20, calibration.samples * calibration.seq_len * 16);
  std::string text(static_cast<size_t>(wanted), '\0');
  in.read(text.data(), wanted);
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(text.size()) == wanted) {
    // Cut at a line end so no word (or UTF-8 sequence) is split.
    const size_t end = text.rfind('\n');
    if (end != std::string::npos && end > text.size() / 2) text.resize(end + 1);
  }
  return text;
}

// Calibration activations must be finite: a NaN or Inf would flow into every statistic (ranges,
// Hessians, AWQ scales) of this layer and every later one. `what` names where they come from.
void check_finite_inputs(const torch::Tensor& hidden, const std::string& what) {
  if (torch::isfinite(hidden).all().item<bool>()) return;
  const int64_t bad = hidden.numel() - torch::isfinite(hidden).sum().item<int64_t>();
  fail(
      "calibration: {} hold {} non-finite values (NaN or Inf) out of {}; the float model already "
      "produces them on the calibration text (check the weights and the compute dtype: {} may "
      "overflow)",
      what, bad, hidden.numel(), c10::toString(hidden.scalar_type()));
}

// Decoder layer `layer` gave non-finite outputs after its stages ran (`process`). Finds the linears
// whose kernels did it; unless the fallback is off or impossible (then the guard's error), puts the
// float layer back, adds them to `effective`'s opname_blacklist, runs the stages again, and returns the
// layer's new outputs -- or fails when they are still not finite. The report names each fallback.
torch::Tensor quantize_again_with_float_fallback(
    CausalLM& net, int64_t layer, const std::vector<std::shared_ptr<LinearImpl>>& linears, PTQConfig& effective,
    QuantizationReport& report, const LayerwiseOptions& options, std::optional<ParameterSnapshot>& snapshot,
    const std::function<std::vector<std::shared_ptr<LinearImpl>>()>& process,
    const std::function<torch::Tensor()>& run) {
  const std::vector<std::shared_ptr<LinearImpl>> culprits = find_non_finite_linears(linears, run);
  if (culprits.empty()) fail_non_finite_layer(layer, culprits);
  if (!options.float_fallback)
    fail_non_finite_layer(layer, culprits, "the automatic float fallback is off (--no-float-fallback)");
  const std::vector<std::shared_ptr<LinearImpl>> all_linears = collect_linears(net);
  std::vector<std::string> names, failed_schemes;
  for (const auto& linear : culprits) {
    const std::string obstacle = float_fallback_obstacle(effective, linear->path(), all_linears);
    if (!obstacle.empty()) fail_non_finite_layer(layer, culprits, obstacle);
    names.push_back(linear->path());
    failed_schemes.push_back(linear->quantized ? linear->quantized->scheme().name() : "float");
  }
  for (const auto& linear : linears) reset_to_float(*linear);
  if (options.reload_step) {
    options.reload_step(layer);
  } else {
    PTQ_CHECK(snapshot.has_value(), "calibration: decoder layer {}: no copy of its float weights to fall back to",
              layer);
    snapshot->restore();
  }
  for (size_t i = 0; i < culprits.size(); ++i) {
    log_warning("calibration: decoder layer {}: {} ({}) gave non-finite outputs; keeping it in float and quantizing "
                "the layer again",
                layer, names[i], failed_schemes[i]);
    effective.opname_blacklist.push_back(names[i]);
  }
  process();
  torch::Tensor next = run();
  if (!torch::isfinite(next).all().item<bool>())
    fail_non_finite_layer(layer, find_non_finite_linears(linears, run),
                          fmt::format("keeping {} in float did not help", fmt::join(names, ", ")));
  for (size_t i = 0; i < culprits.size(); ++i) record_non_finite_fallback(*culprits[i], failed_schemes[i], report);
  return next;
}

}  // namespace

std::string resolve_calibration_file(const CalibrationConfig& calibration, const std::string& fallback) {
  if (!calibration.dataset.empty()) {
    PTQ_CHECK(fs::is_regular_file(calibration.dataset),
              "calibration.dataset \"{}\" does not exist (expected a UTF-8 text file)", calibration.dataset);
    return calibration.dataset;
  }
  if (!fallback.empty()) {
    PTQ_CHECK(fs::is_regular_file(fallback), "calibration file \"{}\" does not exist", fallback);
    return fallback;
  }
  const fs::path shared = fs::path(PTQ_DEFAULT_SHARED_DIR) / "data" / "corpus" / "train_00.txt";
  PTQ_CHECK(fs::is_regular_file(shared),
            "this config needs calibration data: set calibration.dataset in the config or pass --calib FILE "
            "(the default, {}, does not exist)",
            shared.string());
  return shared.string();
}

torch::Tensor sample_calibration_tokens(const std::string& text_file, const Tokenizer& tokenizer,
                                        const CalibrationConfig& calibration) {
  PTQ_CHECK(calibration.samples > 0 && calibration.seq_len > 1,
            "calibration: samples ({}) must be positive and seq_len ({}) at least 2", calibration.samples,
            calibration.seq_len);
  const std::string text = read_calibration_prefix(text_file, calibration);
  PTQ_CHECK(!text.empty(), "calibration data \"{}\" is empty", text_file);
  const std::vector<int64_t> ids = tokenizer.encode(text, /*add_special_tokens=*/false);
  const int64_t T = calibration.seq_len, N = calibration.samples;
  const int64_t total = static_cast<int64_t>(ids.size());
  PTQ_CHECK(total >= T, "calibration data \"{}\" has {} tokens, fewer than calibration.seq_len = {}", text_file,
            total, T);

  // Distinct non-overlapping windows when the text has enough of them, else random (overlapping) starts.
  std::mt19937_64 rng(static_cast<uint64_t>(calibration.seed));
  std::vector<int64_t> starts;
  const int64_t slots = total / T;
  if (slots >= N) {
    std::vector<int64_t> order(static_cast<size_t>(slots));
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = 0; i < N; ++i) {  // partial Fisher-Yates: the first N of a seeded permutation
      std::uniform_int_distribution<int64_t> pick(i, slots - 1);
      std::swap(order[i], order[pick(rng)]);
      starts.push_back(order[i] * T);
    }
  } else {
    log_warning("calibration data \"{}\" holds {} windows of {} tokens, fewer than {} samples: windows overlap",
                text_file, slots, T, N);
    std::uniform_int_distribution<int64_t> pick(0, total - T);
    for (int64_t i = 0; i < N; ++i) starts.push_back(pick(rng));
  }
  torch::Tensor tokens = torch::empty({N, T}, torch::kInt64);
  auto* out = tokens.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) std::copy_n(ids.begin() + starts[i], T, out + i * T);
  return tokens;
}

std::vector<std::shared_ptr<LinearImpl>> layer_linears(CausalLM& net, int64_t index) {
  if (index != kHeadLayer) return collect_linears(*net.decoder_layer(index));
  std::set<const LinearImpl*> in_layers;
  for (int64_t i = 0; i < net.num_decoder_layers(); ++i)
    for (auto& linear : collect_linears(*net.decoder_layer(i))) in_layers.insert(linear.get());
  std::vector<std::shared_ptr<LinearImpl>> head;
  for (auto& linear : collect_linears(net))
    if (!in_layers.count(linear.get())) head.push_back(linear);
  return head;
}

void run_layerwise(CausalLM& net, NetworkHelper& helper, const PTQConfig& config,
                   const std::vector<std::shared_ptr<LayerStage>>& stages, QuantizationReport& report,
                   const LayerwiseOptions& options) {
  torch::NoGradGuard no_grad;
  const bool needs_data = std::any_of(stages.begin(), stages.end(),
                                      [](const auto& stage) { return stage->needs_calibration_data(); });
  const int64_t batch = std::max<int64_t>(1, options.batch_size);

  const int64_t layers = net.num_decoder_layers();
  PTQ_CHECK(options.first_layer >= 0 && options.first_layer <= layers,
            "calibration: resuming at decoder layer {}, but the network has {}", options.first_layer, layers);
  if (options.initial_report) report = *options.initial_report;
  auto before = [&](int64_t step) {
    if (options.before_step) options.before_step(step);
  };
  auto after = [&](int64_t step, const torch::Tensor& next) {
    if (options.after_step) options.after_step(step, next);
  };

  torch::Tensor hidden, positions;
  if (options.first_layer > 0) {
    if (needs_data) {
      hidden = options.first_inputs;
      PTQ_CHECK(hidden.defined() && hidden.dim() == 3,
                "calibration: resuming at decoder layer {} needs its calibration inputs [N, T, C]",
                options.first_layer);
      check_finite_inputs(hidden, fmt::format("the recorded inputs of decoder layer {}", options.first_layer));
      positions = torch::arange(hidden.size(1), torch::TensorOptions().dtype(torch::kInt64).device(hidden.device()))
                      .unsqueeze(0);
    }
  } else if (!needs_data) {
    before(kEmbeddingStep);
    after(kEmbeddingStep, {});
  } else {
    before(kEmbeddingStep);
    torch::Tensor tokens = options.tokens;
    if (!tokens.defined()) {
      const std::string file = resolve_calibration_file(config.calibration);
      log_info("calibration: {} samples of {} tokens from {}", config.calibration.samples,
               config.calibration.seq_len, file);
      tokens = sample_calibration_tokens(file, *helper.create_tokenizer(), config.calibration);
    }
    PTQ_CHECK(tokens.dim() == 2 && tokens.scalar_type() == torch::kInt64,
              "calibration tokens must be int64 [samples, seq_len], got {}", fmt::join(tokens.sizes(), "x"));
    PTQ_CHECK(tokens.size(1) <= net.max_positions(),
              "calibration.seq_len = {} is longer than the model's {} positions", tokens.size(1),
              net.max_positions());
    // Tokens are sampled on the CPU; the embedding lives wherever the network was loaded.
    for (const auto& parameter : net.parameters()) {
      tokens = tokens.to(parameter.device());
      break;
    }
    std::vector<torch::Tensor> embedded;
    for (int64_t b = 0; b < tokens.size(0); b += batch)
      embedded.push_back(net.embed(tokens.narrow(0, b, std::min(batch, tokens.size(0) - b))));
    hidden = torch::cat(embedded, 0);
    check_finite_inputs(hidden,
                        "the embeddings of the calibration tokens (inputs of decoder layer 0)");
    positions = torch::arange(tokens.size(1), torch::TensorOptions().dtype(torch::kInt64).device(hidden.device()))
                    .unsqueeze(0);
    after(kEmbeddingStep, hidden);
  }

  // Runs one decoder layer (or the head) over `hidden` in mini-batches.
  auto run = [&](int64_t index) -> torch::Tensor {
    if (!hidden.defined()) return {};
    std::vector<torch::Tensor> outputs;
    for (int64_t b = 0; b < hidden.size(0); b += batch) {
      const int64_t n = std::min(batch, hidden.size(0) - b);
      torch::Tensor slice = hidden.narrow(0, b, n);
      if (index == kHeadLayer) {
        net.logits(slice);  // observers see the lm_head inputs; the logits themselves are not needed
      } else {
        outputs.push_back(net.decoder_layer_forward(index, slice, positions.expand({n, positions.size(1)})));
      }
    }
    return index == kHeadLayer ? torch::Tensor() : torch::cat(outputs, 0);
  };

  // The config the stages resolve schemes with: the run's, plus the linears the NaN/Inf guard keeps in
  // float (exact opname_blacklist entries; a resumed run's report already holds the earlier ones).
  PTQConfig effective = config_with_float_fallbacks(config, report);
  Progress progress(needs_data ? "calibrating" : "quantizing", layers + 1, "layers");
  if (options.first_layer > 0) progress.advance(options.first_layer, fmt::format("resumed at layer {}", options.first_layer));
  for (int64_t index = options.first_layer; index <= layers; ++index) {
    const int64_t layer = index == layers ? kHeadLayer : index;
    before(layer);
    const bool guarded = layer != kHeadLayer && hidden.defined();
    std::optional<ParameterSnapshot> snapshot;
    if (guarded && options.float_fallback && !options.reload_step) snapshot.emplace(*net.decoder_layer(layer));
    auto process = [&] {
      LayerContext ctx{net, helper, effective, report, layer, layer_linears(net, layer), hidden, positions,
                       [&run, layer] { return run(layer); }};
      for (const auto& stage : stages) stage->process(ctx);
      return ctx.linears;
    };
    const std::vector<std::shared_ptr<LinearImpl>> linears = process();
    if (guarded) {
      // NaN/Inf guard: the inputs were finite (checked when they were produced), so non-finite
      // outputs come from this layer's quantization.
      torch::Tensor next = run(layer);
      if (!torch::isfinite(next).all().item<bool>()) {
        next = quantize_again_with_float_fallback(net, layer, linears, effective, report, options, snapshot,
                                                  process, [&run, layer] { return run(layer); });
      }
      hidden = next;
    }
    after(layer, layer == kHeadLayer ? torch::Tensor() : hidden);
    progress.advance(1, layer == kHeadLayer ? "head" : fmt::format("layer {}", layer));
  }
  progress.finish();
}

}  // namespace ptq
