#include "network_helpers/quantized_model.h"

#include <torch/torch.h>

#include "algorithms/builtin_algorithms.h"
#include "framework/algorithm.h"
#include "framework/checkpoint.h"
#include "framework/checkpoint_config.h"
#include "framework/deferred_weights.h"
#include "framework/error.h"
#include "network_helpers/llama/llama_network_helper.h"

namespace ptq {
namespace fs = std::filesystem;

bool is_quantized_folder(const fs::path& dir) {
  const nlohmann::json config = read_json_file(dir / "config.json");
  const auto block = config.find("quantization_config");
  return block != config.end() && !block->is_null();
}

std::shared_ptr<LlamaForCausalLM> load_quantized(const fs::path& dir, const LoadOptions& options) {
  PTQ_CHECK(fs::is_directory(dir), "{}: not a folder (expected a quantized checkpoint folder)",
            dir.string());
  std::optional<PTQConfig> config = read_checkpoint_config(dir);
  PTQ_CHECK(config.has_value(),
            "{}: config.json has no quantization_config: a float model (use load_llama)",
            dir.string());
  ensure_builtins_registered();
  // Built without weights: the float tensors of the quantized layers are never filled, and the others are
  // allocated once, by load_checkpoint (initialising 1.1B float parameters cost ~4.4 GB and most of a
  // minute of loading time before).
  auto net = [&] {
    DeferredWeightsGuard deferred;
    return std::make_shared<LlamaForCausalLM>(ModelSpec::from_file(dir / "config.json"));
  }();
  net->source_dir = dir;
  // dtype and device first: the DEPLOY structure is built where the weights are, and convert()
  // makes kernels for the compute dtype.
  if (options.compute_dtype != torch::kFloat32) net->set_compute_dtype(options.compute_dtype);
  if (options.device != torch::kCPU) move_to_device(*net, options.device);
  // Module::to copies each parameter on its own, which unties a tied lm_head; the tie is what lets
  // the checkpoint omit lm_head.weight.
  if (net->spec().tie_word_embeddings) net->tie_embeddings();
  LlamaNetworkHelper helper(dir, options);
  std::unique_ptr<Algorithm> algorithm = create_algorithm("ptq", *config);
  algorithm->apply(*net, helper);
  // Filling the structure before convert() builds each kernel once, from the loaded values (loading
  // after convert would build every kernel twice).
  load_checkpoint(dir, *net);
  algorithm->convert(*net);
  net->eval();
  return net;
}

std::shared_ptr<LlamaForCausalLM> load_any_model(const fs::path& dir, const LoadOptions& options) {
  PTQ_CHECK(fs::is_directory(dir), "{}: not a folder (expected a Hugging Face model folder)",
            dir.string());
  return is_quantized_folder(dir) ? load_quantized(dir, options) : load_llama(dir, options);
}

}  // namespace ptq
