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

// Records, for each linear, whether its kernel turned finite inputs into non-finite outputs.
class FiniteOutputProbe : public LinearObserver {
 public:
  explicit FiniteOutputProbe(LinearImpl& linear) : linear_(linear) {}
  void observe(const torch::Tensor& x) override {
    if (broken || !linear_.kernel() || !torch::isfinite(x).all().item<bool>()) return;
    broken = !torch::isfinite(linear_.kernel()->forward(x)).all().item<bool>();
  }
  bool broken = false;

 private:
  LinearImpl& linear_;
};

// A decoder layer turned finite inputs into non-finite outputs after its stages ran: names the
// linears whose quantized kernels did it (one extra run of the layer with probes), then throws.
[[noreturn]] void fail_non_finite_layer(int64_t layer,
                                        const std::vector<std::shared_ptr<LinearImpl>>& linears,
                                        const std::function<torch::Tensor()>& run) {
  std::vector<std::shared_ptr<FiniteOutputProbe>> probes;
  for (auto& linear : linears) {
    probes.push_back(std::make_shared<FiniteOutputProbe>(*linear));
    linear->add_observer(probes.back());
  }
  try {
    run();
  } catch (...) {
    for (auto& linear : linears) linear->clear_observers();
    throw;
  }
  std::vector<std::string> culprits;
  for (size_t i = 0; i < linears.size(); ++i) {
    linears[i]->clear_observers();
    if (probes[i]->broken)
      culprits.push_back(
          fmt::format("{} ({})", linears[i]->path(),
                      linears[i]->quantized ? linears[i]->quantized->scheme().name() : "float"));
  }
  fail(
      "calibration: decoder layer {} produced non-finite outputs (NaN or Inf) from finite inputs "
      "after "
      "quantization; {}",
      layer,
      culprits.empty()
          ? std::string(
                "none of its linears did (the attention or a norm overflowed in the compute dtype)")
          : fmt::format("these quantized linears did: {} (exclude them with opname_blacklist or a "
                        "layer_policies skip)",
                        fmt::join(culprits, ", ")));
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

  Progress progress(needs_data ? "calibrating" : "quantizing", layers + 1, "layers");
  if (options.first_layer > 0) progress.advance(options.first_layer, fmt::format("resumed at layer {}", options.first_layer));
  for (int64_t index = options.first_layer; index <= layers; ++index) {
    const int64_t layer = index == layers ? kHeadLayer : index;
    before(layer);
    LayerContext ctx{net, helper, config, report, layer, layer_linears(net, layer), hidden, positions,
                     [&run, layer] { return run(layer); }};
    for (const auto& stage : stages) stage->process(ctx);
    if (layer != kHeadLayer && hidden.defined()) {
      // NaN/Inf guard: the inputs were finite (checked when they were produced), so non-finite
      // outputs come from this layer's quantization; the error names the linears.
      torch::Tensor next = run(layer);
      if (!torch::isfinite(next).all().item<bool>())
        fail_non_finite_layer(layer, ctx.linears, ctx.run_layer);
      hidden = next;
    }
    after(layer, layer == kHeadLayer ? torch::Tensor() : hidden);
    progress.advance(1, layer == kHeadLayer ? "head" : fmt::format("layer {}", layer));
  }
  progress.finish();
}

}  // namespace ptq
