#include "model_fixtures.h"

#include "network_helpers/llama/random_model.h"
#include "test_util.h"

namespace ptq::testing {

std::filesystem::path tiny_model_dir(const std::string& name, const nlohmann::json& overrides) {
  auto dir = temp_dir("model_" + name);
  nlohmann::json config = preset_config("tiny");
  if (overrides.is_object()) config.update(overrides);
  RandomModelOptions options;
  options.dtype = "float32";
  options.seed = 7;
  options.init_std = 0.1;  // large enough that logits differ clearly between tokens
  write_random_llama(dir, config, options);
  return dir;
}

TinyNet tiny_net() {
  TinyNet t;
  t.helper = std::make_shared<LlamaNetworkHelper>(tiny_model_dir());
  t.net = t.helper->create_network();
  return t;
}

}  // namespace ptq::testing
