#include "tools/ptq/cli_common.h"

#include <iostream>
#include <set>

#include "framework/calibration.h"
#include "framework/checkpoint_layout.h"
#include "framework/error.h"
#include "framework/kv_checkpoint.h"
#include "framework/linear.h"
#include "framework/log.h"
#include "framework/progress.h"
#include "framework/threads.h"
#include "network_helpers/quantized_model.h"

namespace ptq::cli {

void ModelOptions::add_to(CLI::App& command) {
  command
      .add_option("-m,--model", model_dir,
                  "Hugging Face model folder (config.json, *.safetensors, tokenizer), float or quantized by ptq")
      ->required()
      ->check(CLI::ExistingDirectory);
  command.add_option("--dtype", dtype, "Compute dtype: float32 (default), bfloat16 or float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16", "fp32", "bf16", "fp16"}));
  command.add_option("--device", device, "Device the model is loaded onto and runs on: cpu (default), cuda or cuda:N");
}

void apply_runtime_options(const GlobalOptions& options, bool json_output) {
  int threads = configure_threads(options.threads);
  if (options.quiet || json_output) Progress::set_enabled(false);
  if (options.quiet) set_log_level(LogLevel::kWarning);
  log_debug("using {} threads", threads);
}

LoadedModel load_model(const ModelOptions& options) {
  LoadOptions load;
  load.compute_dtype = parse_compute_dtype(options.dtype);
  load.device = torch::Device(options.device);  // throws c10::Error on a bad spelling
  LoadedModel loaded;
  loaded.helper = std::make_shared<LlamaNetworkHelper>(options.model_dir, load);
  // A quantized checkpoint (config.json with quantization_config) is rebuilt with its real kernels.
  loaded.network = load_any_model(options.model_dir, load);
  return loaded;
}

void print_json(const nlohmann::json& value) { std::cout << value.dump(2) << std::endl; }

void PerplexityCliOptions::add_to(CLI::App& command, const std::string& window_note) {
  command
      .add_option("--protocol", protocol,
                  "windows: whole file without special tokens, non-overlapping windows, no BOS (reference.json); "
                  "gptq: lines joined with \\n\\n, one BOS, 2048-token windows (GPTQ/AWQ papers)")
      ->check(CLI::IsMember({"windows", "gptq"}));
  command.add_option("-w,--window", window, "Tokens per window (default 512; 2048 for gptq)" + window_note)
      ->check(CLI::PositiveNumber);
  command.add_option("--batch", batch, "Windows per forward pass")->check(CLI::PositiveNumber);
  command.add_option("--max-windows", max_windows, "Score only the first N windows (0: all)")
      ->check(CLI::NonNegativeNumber);
}

PerplexityOptions PerplexityCliOptions::resolve(bool show_progress) const {
  PerplexityOptions options;
  options.protocol = parse_perplexity_protocol(protocol);
  options.window = window > 0 ? window : (options.protocol == PerplexityProtocol::kGptq ? 2048 : 512);
  options.batch = batch;
  options.max_windows = max_windows;
  options.show_progress = show_progress;
  return options;
}

std::vector<int64_t> evaluation_ids(const LoadedModel& loaded, const std::string& file, PerplexityProtocol protocol) {
  auto tokenizer = loaded.helper->create_tokenizer();
  return tokenize_for_perplexity(*tokenizer, read_evaluation_text(file, protocol), protocol);
}

void QuantizeCliOptions::add_to(CLI::App& command) {
  command
      .add_option("--calib", calib,
                  "Calibration text file (overrides calibration.dataset; default ../shared/data/corpus/train_00.txt)")
      ->check(CLI::ExistingFile);
  command.add_option("--backend", backend, "Override the config's backend: reference, cpu, cuda or auto");
  command.add_option("--inject-outliers", inject_outliers,
                     "CHANNELS:FACTOR: before quantizing, give CHANNELS random input channels of every norm -> "
                     "linear group FACTOR x larger activations, function-preserving (a test of outlier handling; "
                     "docs/ACCURACY.md)");
}

PTQConfig load_quantize_recipe(const std::string& config_file, const QuantizeCliOptions& options) {
  PTQConfig config = PTQConfig::from_file(config_file);
  PTQ_CHECK(config.mode == PTQMode::kQuantize,
            "{}: mode is \"deploy\"; quantizing needs \"quantize\" (deploy configs are for loading checkpoints)",
            config_file);
  if (!options.calib.empty()) config.calibration.dataset = options.calib;
  if (!options.backend.empty()) {
    nlohmann::json j = config.to_json();
    j["backend"] = options.backend;
    config = PTQConfig::from_json(j, "--backend");
  }
  return config;
}

OutlierInjection parse_outlier_injection(const std::string& text) {
  OutlierInjection injection;
  const size_t colon = text.find(':');
  try {
    PTQ_CHECK(colon != std::string::npos, "");
    size_t used = 0;
    injection.channels = std::stoll(text.substr(0, colon), &used);
    PTQ_CHECK(used == colon, "");
    const std::string factor = text.substr(colon + 1);
    injection.factor = std::stod(factor, &used);
    PTQ_CHECK(used == factor.size(), "");
  } catch (const std::exception&) {
    fail("--inject-outliers \"{}\": expected CHANNELS:FACTOR, e.g. 8:50", text);
  }
  PTQ_CHECK(injection.channels > 0 && injection.factor > 0,
            "--inject-outliers \"{}\": channels and factor must be positive", text);
  return injection;
}

void apply_outlier_injection(LoadedModel& loaded, const std::string& spec) {
  if (spec.empty()) return;
  const OutlierInjection injection = parse_outlier_injection(spec);
  const int64_t groups = inject_outliers(*loaded.network, *loaded.helper, injection);
  log_info("injected outliers: {} channels x {} in {} norm -> linear groups (the float function is unchanged)",
           injection.channels, injection.factor, groups);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

QuantizeTimes quantize_network(PTQ& algo, LoadedModel& loaded, bool float_fallback) {
  QuantizeTimes times;
  LayerwiseOptions options;
  options.float_fallback = float_fallback;
  auto start = std::chrono::steady_clock::now();
  algo.apply(*loaded.network, *loaded.helper, options);
  times.apply = seconds_since(start);
  start = std::chrono::steady_clock::now();
  algo.convert(*loaded.network);
  times.convert = seconds_since(start);
  return times;
}

int64_t weight_file_bytes(const std::filesystem::path& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") total += entry.file_size();
  return total;
}

int64_t checkpoint_tensor_bytes(const CausalLM& net) {
  const auto bytes = [](torch::ScalarType dtype, int64_t numel) {
    return numel * static_cast<int64_t>(c10::elementSize(dtype));
  };
  // The 16-bit dtype config.json declares (float tensors are stored back in it).
  std::optional<torch::ScalarType> narrow;
  const nlohmann::json config = net.hf_config();
  for (const char* key : {"torch_dtype", "dtype"}) {
    const auto it = config.find(key);
    if (narrow || it == config.end() || !it->is_string()) continue;
    if (*it == "bfloat16") narrow = torch::kBFloat16;
    if (*it == "float16") narrow = torch::kFloat16;
  }
  std::map<std::string, const QuantizedLinearParams*> quantized_by_weight;
  for (const auto& [name, linear] : named_linears(net))
    if (linear->quantized) quantized_by_weight[name + ".weight"] = linear->quantized.get();
  int64_t total = 0;
  std::set<const void*> counted;
  for (const auto& item : net.named_parameters(/*recurse=*/true)) {
    const torch::Tensor& tensor = item.value();
    auto q = quantized_by_weight.find(item.key());
    if (q != quantized_by_weight.end()) {
      for (const StoredTensor& stored : compressed_tensors_layout(*q->second)) {
        int64_t numel = 1;
        for (int64_t d : stored.shape) numel *= d;
        total += bytes(stored.dtype, numel);
      }
      continue;
    }
    if (tensor.numel() > 0 && !counted.insert(tensor.data_ptr()).second) continue;  // tied
    const bool narrowed = narrow && tensor.is_floating_point();
    total += bytes(narrowed ? *narrow : tensor.scalar_type(), tensor.numel());
  }
  for (const auto& item : net.named_buffers(/*recurse=*/true))
    total += bytes(item.value().scalar_type(), item.value().numel());
  for (const auto& [name, scale] : kv_scale_tensors(net)) total += bytes(scale.scalar_type(), scale.numel());
  return total;
}

}  // namespace ptq::cli
