// ptq against what Hugging Face transformers (ptq-small-32m/reference.json) and llama2.c
// (stories260K/REFERENCE.md) measured on the same weights. Skipped when ../shared is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <torch/torch.h>

#include <fstream>
#include <regex>

#include "network_helpers/eval/generation.h"
#include "network_helpers/eval/perplexity.h"
#include "network_helpers/llama/llama2c_import.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;

// reference.json perplexities must be reproduced within 0.1% relative (the acceptance bar);
// fp32 summation order alone moves them by ~1e-5.
constexpr double kPerplexityRelativeTolerance = 1e-3;

nlohmann::json small_reference() {
  std::ifstream in(testing::shared_data_dir() / "models/ptq-small-32m/reference.json");
  return nlohmann::json::parse(in);
}

struct SmallModel {
  std::shared_ptr<LlamaNetworkHelper> helper;
  std::shared_ptr<CausalLM> net;
  std::shared_ptr<Tokenizer> tokenizer;
};

SmallModel& small_model() {
  static SmallModel m = [] {
    SmallModel s;
    s.helper = std::make_shared<LlamaNetworkHelper>(testing::shared_data_dir() / "models/ptq-small-32m");
    s.net = s.helper->create_network();
    s.tokenizer = s.helper->create_tokenizer();
    return s;
  }();
  return m;
}

TEST(PtqSmall32m, GreedyGenerationReproducesTransformers) {
  PTQ_REQUIRE_SHARED_DATA();
  auto& m = small_model();
  auto reference = small_reference();
  ASSERT_EQ(reference["greedy"].size(), 4u);
  for (const auto& case_ : reference["greedy"]) {
    auto prompt_ids = case_["prompt_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(m.tokenizer->encode(case_["prompt"].get<std::string>(), true), prompt_ids) << case_["prompt"];
    auto expected = case_["output_ids"].get<std::vector<int64_t>>();
    GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt_ids.size());
    auto out = m.helper->generate(*m.net, {prompt_ids}, options);
    EXPECT_EQ(out[0], expected) << case_["prompt"];
  }
}

TEST(PtqSmall32m, ProbeLogitsMatchTransformers) {
  PTQ_REQUIRE_SHARED_DATA();
  auto& m = small_model();
  auto reference = small_reference();
  auto ids = torch::tensor(reference["probe_ids"].get<std::vector<int64_t>>(), torch::kInt64).unsqueeze(0);
  torch::NoGradGuard no_grad;
  auto logits = m.net->forward(ids)[0];
  auto expected = reference["probe_logits_last_first8"].get<std::vector<double>>();
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(logits[-1][i].item<double>(), expected[i], 1e-3) << "logit " << i;
  double sum = logits.sum().item<double>(), expected_sum = reference["probe_logits_sum"].get<double>();
  EXPECT_NEAR(sum, expected_sum, std::abs(expected_sum) * 1e-5);
}

// Perplexity through the whole evaluation path (tokenize, windows, batching, scoring) on real text. CI
// scores the first 16 windows of heldout at 512 against the value the CUDA build gives (59.63059;
// docs/ACCURACY.md: the full file equals transformers' number to 1e-6 on the GPU machine). The full-file
// comparison with transformers' own number takes 6-18 min on this 2-core machine, so it runs only with
// PTQ_FULL_EVAL=1 (scripts/verify_reference.sh prints all four reference numbers anywhere).
PerplexityResult heldout_window512(int64_t max_windows) {
  auto& m = small_model();
  std::string text = read_evaluation_text(testing::shared_data_dir() / "heldout/gutenberg_heldout.txt",
                                          PerplexityProtocol::kWindows);
  auto ids = tokenize_for_perplexity(*m.tokenizer, text, PerplexityProtocol::kWindows);
  EXPECT_EQ(static_cast<int64_t>(ids.size()),
            small_reference()["eval"]["gutenberg_heldout.txt"]["tokens"].get<int64_t>());
  PerplexityOptions options;
  options.window = 512;
  options.batch = 4;
  options.max_windows = max_windows;
  options.show_progress = false;
  return evaluate_perplexity(*m.net, ids, options);
}

TEST(PtqSmall32m, HeldoutPerplexityFirstWindowsMatchCuda) {
  PTQ_REQUIRE_SHARED_DATA();
  const PerplexityResult r = heldout_window512(16);
  EXPECT_EQ(r.scored_tokens, 16 * 511);  // each window predicts its last 511 tokens
  EXPECT_NEAR(r.perplexity, 59.63059, 59.63059 * 1e-5);
}

TEST(PtqSmall32m, HeldoutPerplexityWindow512MatchesTransformers) {
  PTQ_REQUIRE_SHARED_DATA();
  const char* full = std::getenv("PTQ_FULL_EVAL");
  if (full == nullptr || std::string(full) != "1")
    GTEST_SKIP() << "the full-file evaluation takes 6-18 min on 2 cores; set PTQ_FULL_EVAL=1 to run it";
  auto reference = small_reference()["eval"]["gutenberg_heldout.txt"];
  const PerplexityResult r = heldout_window512(0);
  EXPECT_EQ(r.scored_tokens, reference["ppl_window512_scored_tokens"].get<int64_t>());
  double expected = reference["ppl_window512"].get<double>();
  EXPECT_NEAR(r.perplexity, expected, expected * kPerplexityRelativeTolerance);
}

// ---- stories260K (llama2.c) ---------------------------------------------------------------------

std::vector<int64_t> ids_after(const std::string& markdown, const std::string& marker) {
  size_t at = markdown.find(marker);
  EXPECT_NE(at, std::string::npos) << marker;
  size_t open = markdown.find('[', markdown.find("generated ids", at));
  size_t close = markdown.find(']', open);
  std::vector<int64_t> ids;
  std::string list = markdown.substr(open + 1, close - open - 1);
  std::regex number("[0-9]+");
  for (std::sregex_iterator it(list.begin(), list.end(), number), end; it != end; ++it) ids.push_back(std::stoll(it->str()));
  return ids;
}

TEST(Stories260K, GreedyOutputsMatchLlama2c) {
  PTQ_REQUIRE_SHARED_DATA();
  auto src = testing::shared_data_dir() / "models/stories260K";
  auto dir = testing::temp_dir("stories260K");
  import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
  LlamaNetworkHelper helper(dir);
  auto net = helper.create_network();
  auto tokenizer = helper.create_tokenizer();
  std::ifstream in(src / "REFERENCE.md");
  std::string markdown((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  struct Case {
    std::string marker, prompt;
    std::vector<int64_t> prompt_ids;
  };
  for (const Case& c : {Case{"case 2 prompt ids", "Zoo", {1, 410, 469, 347}},
                        Case{"case 3 prompt ids", "Once upon", {1, 403, 407}},
                        Case{"case 1 prompt ids", "", {1}}}) {
    if (!c.prompt.empty()) EXPECT_EQ(tokenizer->encode(c.prompt, true), c.prompt_ids) << c.prompt;
    auto expected = ids_after(markdown, c.marker);  // generated ids; for prompts they echo the prompt first
    // run.c feeds prompt tokens and reports every token it outputs from position 1 on: the echo of the
    // prompt (without BOS) followed by the model's choices.
    const int64_t echoed = static_cast<int64_t>(c.prompt_ids.size()) - 1;
    GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size()) - echoed;
    options.stop_at_eos = false;
    auto out = helper.generate(*net, {c.prompt_ids}, options)[0];
    std::vector<int64_t> produced(out.begin() + 1, out.end());
    EXPECT_EQ(produced, expected) << c.marker;
  }
}

}  // namespace
}  // namespace ptq
