// Every way a user loads a quantized checkpoint gives the network that was saved, for every kind of
// checkpoint: {tied, untied embeddings} x {lm_head kept in float, lm_head quantized} x {quantized in
// memory, layer-streamed by `ptq quantize --stream`}, loaded by load_quantized, load_any_model,
// `ptq generate`, `ptq eval` and the embedding example (examples/quantize_and_deploy.cc).
//
// The case that reached users broken: a tied model whose lm_head stays float (the default: every shipped
// recipe keeps lm_head in float). The loader filled the embedding's placeholder with new storage and
// left the tied lm_head on the placeholder ("lm_head.weight ... is missing").
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "algorithms/ptq.h"
#include "framework/checkpoint.h"
#include "framework/safetensors.h"
#include "model_fixtures.h"
#include "network_helpers/eval/perplexity.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "network_helpers/quantized_model.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct LoadCase {
  bool tied;
  bool quantized_lm_head;
  bool streamed;
};

std::string case_name(const ::testing::TestParamInfo<LoadCase>& info) {
  const LoadCase& c = info.param;
  return fmt::format("{}_{}_{}", c.tied ? "Tied" : "Untied", c.quantized_lm_head ? "QuantizedHead" : "FloatHead",
                     c.streamed ? "Streamed" : "InMemory");
}

void PrintTo(const LoadCase& c, std::ostream* os) { *os << case_name({c, 0}); }

constexpr const char* kPrompt = "hello world";
constexpr int64_t kNewTokens = 8;
constexpr int64_t kWindow = 64;
constexpr int64_t kWindows = 4;

using testing::run_ptq;

class LoadMatrix : public ::testing::TestWithParam<LoadCase> {
 protected:
  void SetUp() override {
    const LoadCase& c = GetParam();
    const std::string name = case_name({c, 0});
    model_ = testing::tiny_model_dir(c.tied ? "tied" : "untied", {{"tie_word_embeddings", c.tied}});
    work_ = testing::temp_dir("load_matrix_" + name);
    json recipe = {{"weight_quant_dtype", "int4"},
                   {"weight_quant_granularity", "per_group"},
                   {"group_size", 32},
                   {"weight_symmetric", false}};
    // Without a blacklist entry lm_head is quantized like every other linear.
    recipe["opname_blacklist"] = c.quantized_lm_head ? json::array() : json::array({"lm_head"});
    config_file_ = work_ / "recipe.json";
    std::ofstream(config_file_) << recipe.dump(2);
    text_file_ = testing::random_words_file("load_matrix_text", 11, 400);

    // The network that is saved: quantized in memory through the embedding API.
    helper_ = std::make_shared<LlamaNetworkHelper>(model_);
    saved_ = helper_->create_network();
    PTQ algo(PTQConfig::from_file(config_file_));
    algo.apply(saved_, *helper_);
    algo.convert(saved_);
    checkpoint_ = work_ / "checkpoint";
    if (c.streamed) {
      const testing::CommandResult r = run_ptq(fmt::format("quantize --model '{}' --config '{}' --out '{}' --stream",
                                                           model_.string(), config_file_.string(),
                                                           checkpoint_.string()));
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    } else {
      save_checkpoint(*saved_, checkpoint_);
    }
    // The case really is the one it is named after.
    const TensorStore store = TensorStore::open(checkpoint_);
    ASSERT_EQ(store.has("lm_head.weight_packed"), c.quantized_lm_head);
    ASSERT_EQ(store.has("lm_head.weight"), !c.tied && !c.quantized_lm_head);
  }

  torch::Tensor prompt_ids() const {
    return torch::tensor(helper_->create_tokenizer()->encode(kPrompt, true), torch::kInt64).unsqueeze(0);
  }
  torch::Tensor logits_of(CausalLM& net) const {
    torch::NoGradGuard no_grad;
    return net.forward(prompt_ids());
  }

  fs::path model_, work_, config_file_, checkpoint_;
  std::string text_file_;
  std::shared_ptr<LlamaNetworkHelper> helper_;
  std::shared_ptr<CausalLM> saved_;
};

// One test per case (each case quantizes and, streamed, runs `ptq quantize` once); every loader in it.
TEST_P(LoadMatrix, EveryLoaderGivesTheSavedNetwork) {
  const torch::Tensor expected_logits = logits_of(*saved_);
  {
    SCOPED_TRACE("load_quantized");
    EXPECT_TRUE(torch::equal(expected_logits, logits_of(*load_quantized(checkpoint_))));
  }
  {
    SCOPED_TRACE("load_any_model");
    EXPECT_TRUE(torch::equal(expected_logits, logits_of(*load_any_model(checkpoint_))));
  }
  {
    SCOPED_TRACE("ptq generate");
    GenerationOptions options;
    options.max_new_tokens = kNewTokens;
    const auto prompt = helper_->create_tokenizer()->encode(kPrompt, true);
    const auto expected = helper_->generate(*saved_, {prompt}, options);
    const testing::CommandResult r = run_ptq(fmt::format("generate --model '{}' --prompt '{}' -n {} --json",
                                                         checkpoint_.string(), kPrompt, kNewTokens));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const json outputs = json::parse(r.out)["outputs"];
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0]["output_ids"].get<std::vector<int64_t>>(), expected[0]);
  }
  {
    SCOPED_TRACE("ptq eval");
    PerplexityOptions options;
    options.window = kWindow;
    options.max_windows = kWindows;
    options.show_progress = false;
    const auto ids = tokenize_for_perplexity(*helper_->create_tokenizer(),
                                             read_evaluation_text(text_file_, options.protocol), options.protocol);
    const double expected = evaluate_perplexity(*saved_, ids, options).perplexity;
    const testing::CommandResult r = run_ptq(fmt::format("eval --model '{}' --data '{}' --window {} --max-windows {} --json",
                                                         checkpoint_.string(), text_file_, kWindow, kWindows));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // Another process with one thread: float summation order may differ, nothing more.
    EXPECT_NEAR(json::parse(r.out)["ppl"].get<double>(), expected, 1e-5 * expected);
  }
  // The embedding example quantizes in memory, saves, loads and fails unless the logits are identical.
  if (!GetParam().streamed) {
    SCOPED_TRACE("examples/quantize_and_deploy");
#ifdef PTQ_TEST_EXAMPLE_BINARY
    const testing::CommandResult r = testing::run_command(
        fmt::format("'{}' '{}' '{}' '{}'", PTQ_TEST_EXAMPLE_BINARY, model_.string(), config_file_.string(),
                    (work_ / "example_out").string()));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("deployed logits identical to the quantized network's: yes"), std::string::npos) << r.out;
#endif
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, LoadMatrix,
                         ::testing::Values(LoadCase{true, false, false}, LoadCase{true, false, true},
                                           LoadCase{true, true, false}, LoadCase{true, true, true},
                                           LoadCase{false, false, false}, LoadCase{false, false, true},
                                           LoadCase{false, true, false}, LoadCase{false, true, true}),
                         case_name);

}  // namespace
}  // namespace ptq
