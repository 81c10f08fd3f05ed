#include "model_fixtures.h"

#include <fstream>
#include <map>
#include <mutex>
#include <random>

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

std::string random_words(unsigned seed, int words) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> letter('a', 'z'), length(1, 8);
  std::string text;
  for (int w = 0; w < words; ++w) {
    for (int i = length(rng); i > 0; --i) text += static_cast<char>(letter(rng));
    text += w % 11 == 10 ? '\n' : ' ';
  }
  return text;
}

std::string random_words_file(const std::string& name, unsigned seed, int words) {
  static std::mutex mutex;
  static std::map<std::string, std::string> written;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = written.find(name);
  if (found != written.end()) return found->second;
  const auto file = temp_dir(name) / "calibration.txt";
  std::ofstream(file) << random_words(seed, words);
  return written[name] = file.string();
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor b64 = b.to(torch::kFloat64);
  return ((a.to(torch::kFloat64) - b64).norm() / b64.norm()).item<double>();
}

}  // namespace ptq::testing
