// NetworkHelper for the Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM).
#pragma once

#include <filesystem>

#include "framework/network_helper.h"
#include "network_helpers/llama/llama_loader.h"
#include "network_helpers/llama/model_spec.h"

namespace ptq {

class LlamaNetworkHelper : public NetworkHelper {
 public:
  explicit LlamaNetworkHelper(std::filesystem::path model_dir, LoadOptions options = {});

  std::shared_ptr<CausalLM> create_network() override;
  nlohmann::json get_spec(const std::string& name) const override;
  std::shared_ptr<Tokenizer> create_tokenizer() override;
  std::pair<torch::Tensor, torch::Tensor> assemble_inputs(
      const std::vector<std::vector<int64_t>>& batch) const override;
  std::vector<std::vector<int64_t>> generate(CausalLM& network, const std::vector<std::vector<int64_t>>& prompts,
                                             const GenerationOptions& options) override;

  // Per decoder layer: input_layernorm -> q,k,v; v -> o (when shapes allow: no GQA);
  // post_attention_layernorm -> gate,up; up -> down.
  std::vector<ScalingGroup> scaling_groups(CausalLM& network, int64_t layer) override;

  const ModelSpec& spec() const { return spec_; }
  const std::filesystem::path& model_dir() const { return model_dir_; }

 private:
  std::filesystem::path model_dir_;
  LoadOptions options_;
  ModelSpec spec_;
  std::shared_ptr<Tokenizer> tokenizer_;
};

}  // namespace ptq
