#include "tools/ptq/cli_common.h"

#include <iostream>

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

}  // namespace ptq::cli
