#include "network_helpers/llama/llama_loader.h"

#include <torch/torch.h>

#include <set>

#include "framework/deferred_weights.h"
#include "framework/error.h"
#include "framework/torch_format.h"
#include "framework/log.h"
#include "framework/safetensors.h"

namespace ptq {
namespace fs = std::filesystem;

torch::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "f16") return torch::kFloat16;
  fail("compute dtype \"{}\" is not supported, expected float32, bfloat16 or float16", name);
}

void load_llama_weights(LlamaForCausalLM& network, const fs::path& model_dir) {
  TensorStore store = TensorStore::open(model_dir);
  const ModelSpec& spec = network.spec();
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : network.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    if (!store.has(name)) {
      if (name == "lm_head.weight" && spec.tie_word_embeddings) continue;
      fail("{}: tensor \"{}\" is missing (the config describes a {} with {} layers)", model_dir.string(), name,
           spec.architecture, spec.num_layers);
    }
    torch::Tensor source = store.tensor(name);
    PTQ_CHECK(source.sizes() == param.sizes(), "{}: tensor \"{}\" has shape {}, but config.json implies {}",
              model_dir.string(), name, source.sizes(), param.sizes());
    PTQ_CHECK(source.is_floating_point(), "{}: tensor \"{}\" has dtype {}, expected a floating-point dtype",
              model_dir.string(), name, source.scalar_type());
    fill_tensor(param, source);
    used.insert(name);
  }
  if (spec.tie_word_embeddings) network.tie_embeddings();
  std::vector<std::string> unused;
  for (const auto& name : store.names())
    if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) unused.push_back(name);
  if (!unused.empty())
    log_warning("{}: {} tensors in the checkpoint are not used by the network, e.g. \"{}\"", model_dir.string(),
                unused.size(), unused.front());
}

std::shared_ptr<LlamaForCausalLM> load_llama(const fs::path& model_dir, const LoadOptions& options) {
  PTQ_CHECK(fs::is_directory(model_dir), "{}: not a folder (expected a Hugging Face model folder)", model_dir.string());
  ModelSpec spec = ModelSpec::from_file(model_dir / "config.json");
  // Built without weights, converted to the compute dtype while its parameters are still placeholders,
  // then filled: each tensor is allocated once, in its final dtype (initialising the parameters and
  // overwriting them doubled the peak memory of loading).
  std::shared_ptr<LlamaForCausalLM> network;
  {
    DeferredWeightsGuard deferred;
    network = std::make_shared<LlamaForCausalLM>(spec);
  }
  if (options.compute_dtype != torch::kFloat32) network->set_compute_dtype(options.compute_dtype);
  if (options.defer_weights) {
    const TensorStore store = TensorStore::open(model_dir);
    for (const auto& item : network->named_parameters(/*recurse=*/true)) {
      const std::string& name = item.key();
      if (!store.has(name)) {
        PTQ_CHECK(name == "lm_head.weight" && spec.tie_word_embeddings,
                  "{}: tensor \"{}\" is missing (the config describes a {} with {} layers)", model_dir.string(), name,
                  spec.architecture, spec.num_layers);
        continue;
      }
      const SafetensorsTensorInfo& info = store.info(name);
      PTQ_CHECK(info.shape == item.value().sizes().vec(),
                "{}: tensor \"{}\" has shape {}, but config.json implies {}", model_dir.string(), name,
                fmt::join(info.shape, "x"), fmt::join(item.value().sizes(), "x"));
    }
    network->source_dir = model_dir;
    network->eval();
    return network;
  }
  load_llama_weights(*network, model_dir);
  network->source_dir = model_dir;
  if (options.device != torch::kCPU) {
    network->to(options.device);
    // Module::to copies each parameter on its own, which unties a tied lm_head.
    if (spec.tie_word_embeddings) network->tie_embeddings();
  }
  network->eval();
  return network;
}

}  // namespace ptq
