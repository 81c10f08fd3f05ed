// ptq generate: greedy or sampled continuation of prompts, streamed to stdout.
#include <cmath>
#include <iostream>

#include "framework/error.h"
#include "network_helpers/eval/generation.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

// Bounds users can read in a message (CLI11's PositiveNumber prints a 309-digit range).
constexpr int64_t kMaxNewTokens = int64_t{1} << 20;
constexpr int64_t kMaxTopK = int64_t{1} << 30;

struct GenerateOptions {
  ModelOptions model;
  std::vector<std::string> prompts;
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  bool no_bos = false;
  bool json = false;
};

void run_generate(const GenerateOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  PTQ_CHECK(std::isfinite(o.temperature), "--temperature {}: expected a finite number >= 0 (0: greedy)", o.temperature);
  LoadedModel loaded = load_model(o.model);
  auto tokenizer = loaded.helper->create_tokenizer();
  GenerationOptions options;
  options.max_new_tokens = o.max_new_tokens;
  options.greedy = o.temperature <= 0.0;
  options.temperature = o.temperature;
  options.top_k = o.top_k;
  options.top_p = o.top_p;
  options.seed = o.seed;

  std::vector<std::vector<int64_t>> prompts;
  for (const auto& p : o.prompts) prompts.push_back(tokenizer->encode(p, /*add_special_tokens=*/!o.no_bos));
  for (size_t i = 0; i < prompts.size(); ++i)
    PTQ_CHECK(!prompts[i].empty(), "generate: prompt {} is empty and the tokenizer adds no BOS", i);

  // One prompt streams as it goes; several are generated as one batch and printed at the end.
  std::unique_ptr<TextStreamer> streamer;
  if (prompts.size() == 1 && !o.json) {
    streamer = std::make_unique<TextStreamer>(*tokenizer, prompts[0]);
    std::cout << o.prompts[0] << std::flush;
    options.on_token = [&](int64_t, int64_t token) { std::cout << streamer->push(token) << std::flush; };
  }
  auto outputs = loaded.helper->generate(*loaded.network, prompts, options);
  if (streamer) {
    std::cout << streamer->flush() << std::endl;
    return;
  }
  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string text = tokenizer->decode(outputs[i], /*skip_special_tokens=*/true);
    results.push_back({{"prompt", o.prompts[i]},
                       {"prompt_ids", prompts[i]},
                       {"output_ids", outputs[i]},
                       {"text", text}});
    if (!o.json) std::cout << "[" << i << "] " << text << "\n" << std::endl;
  }
  if (o.json) print_json({{"outputs", results}});
}

}  // namespace

void add_generate_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue prompts (greedy by default; sampling with --temperature)");
  options->model.add_to(*cmd);
  cmd->add_option("-p,--prompt", options->prompts, "Prompt text (repeat for a batch)")->required();
  cmd->add_option("-n,--max-new-tokens", options->max_new_tokens, "Tokens to generate")->check(CLI::Range(int64_t{1}, kMaxNewTokens));
  cmd->add_option("-t,--temperature", options->temperature, "0 = greedy; > 0 samples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", options->top_k, "Sample only from the k most likely tokens (0: off)")
      ->check(CLI::Range(int64_t{0}, kMaxTopK));
  cmd->add_option("--top-p", options->top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", options->seed, "Random seed for sampling");
  cmd->add_flag("--no-bos", options->no_bos, "Do not add the tokenizer's special tokens (BOS) to the prompt");
  cmd->add_flag("--json", options->json, "Print one JSON object with prompt and output ids and texts");
  cmd->callback([options, &globals] { run_generate(*options, globals); });
}

}  // namespace ptq::cli
