// The Llama network against itself: incremental decoding must equal one full causal pass, batched
// left-padded prefill must equal one sequence at a time, and the loader must refuse bad folders.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "framework/error.h"
#include "framework/safetensors.h"
#include "model_fixtures.h"
#include "network_helpers/eval/generation.h"
#include "network_helpers/eval/perplexity.h"
#include "network_helpers/eval/throughput.h"
#include "network_helpers/llama/llama_network_helper.h"
#include "test_util.h"

namespace ptq {
namespace {
using ::ptq::testing::expect_error;
namespace fs = std::filesystem;

// fp32 LibTorch kernels pick different blockings for different shapes (T=1 vs T=16), so the same logits
// computed incrementally and in one pass differ by rounding only: ~1e-6 relative on these sizes.
constexpr double kFp32LogitTolerance = 2e-5;

std::vector<std::vector<int64_t>> some_sequences() {
  return {{5, 17, 42, 99, 3, 250, 7, 8, 100, 31, 64}, {12, 13}, {200, 201, 202, 203, 204, 205}};
}

TEST(LlamaModel, IncrementalDecodeMatchesFullForward) {
  auto net = load_llama(testing::tiny_model_dir());
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(some_sequences()[0], torch::kInt64).unsqueeze(0);
  const int64_t T = ids.size(1);
  auto full = net->forward(ids);  // [1, T, V]
  auto state = net->new_state(1, 4);  // capacity smaller than T: exercises cache growth
  std::vector<torch::Tensor> steps;
  // A 3-token prefill, then one token at a time.
  steps.push_back(net->forward(ids.narrow(1, 0, 3), state.get()));
  for (int64_t t = 3; t < T; ++t) steps.push_back(net->forward(ids.narrow(1, t, 1), state.get()));
  auto incremental = torch::cat(steps, 1);
  EXPECT_EQ(state->length(), T);
  EXPECT_TRUE(torch::allclose(incremental, full, kFp32LogitTolerance, kFp32LogitTolerance))
      << "max diff " << (incremental - full).abs().max().item<double>();
}

TEST(LlamaModel, BatchedPrefillOfDifferentLengthsMatchesOneAtATime) {
  LlamaNetworkHelper helper(testing::tiny_model_dir());
  auto net = helper.create_network();
  torch::NoGradGuard no_grad;
  auto sequences = some_sequences();
  auto [ids, mask] = helper.assemble_inputs(sequences);
  auto batched = net->forward(ids, nullptr, mask);
  const int64_t T = ids.size(1);
  for (size_t b = 0; b < sequences.size(); ++b) {
    auto single = net->forward(torch::tensor(sequences[b], torch::kInt64).unsqueeze(0));
    const int64_t n = static_cast<int64_t>(sequences[b].size());
    auto real = batched[b].narrow(0, T - n, n);  // left padding: the real tokens are at the end
    EXPECT_TRUE(torch::allclose(real, single[0], kFp32LogitTolerance, kFp32LogitTolerance))
        << "sequence " << b << " max diff " << (real - single[0]).abs().max().item<double>();
  }
}

// forward_last (generation's prefill and steps) gives forward's last position, batched with left padding
// and with a state, while its lm_head sees one row per sequence.
TEST(LlamaModel, ForwardLastIsTheLastPositionOfForward) {
  LlamaNetworkHelper helper(testing::tiny_model_dir());
  auto net = helper.create_network();
  torch::NoGradGuard no_grad;
  auto [ids, mask] = helper.assemble_inputs(some_sequences());
  const int64_t B = ids.size(0), T = ids.size(1);
  auto full = net->forward(ids, nullptr, mask);
  auto last = net->forward_last(ids, nullptr, mask);
  ASSERT_EQ(last.sizes(), (std::vector<int64_t>{B, 1, full.size(2)}));
  EXPECT_TRUE(torch::allclose(last, full.narrow(1, T - 1, 1), kFp32LogitTolerance, kFp32LogitTolerance))
      << "max diff " << (last - full.narrow(1, T - 1, 1)).abs().max().item<double>();
  // With a state: the prefill fills the cache as forward's does, so the next step continues it.
  auto state_full = net->new_state(B, T + 1), state_last = net->new_state(B, T + 1);
  net->forward(ids, state_full.get(), mask);
  net->forward_last(ids, state_last.get(), mask);
  auto next = torch::full({B, 1}, 7, torch::kInt64);
  EXPECT_TRUE(torch::allclose(net->forward_last(next, state_last.get()), net->forward(next, state_full.get()),
                              kFp32LogitTolerance, kFp32LogitTolerance));
}

TEST(LlamaModel, BatchedGreedyGenerationMatchesSingle) {
  LlamaNetworkHelper helper(testing::tiny_model_dir());
  auto net = helper.create_network();
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.stop_at_eos = false;
  auto sequences = some_sequences();
  auto batched = helper.generate(*net, sequences, options);
  for (size_t b = 0; b < sequences.size(); ++b) {
    auto single = helper.generate(*net, {sequences[b]}, options);
    EXPECT_EQ(batched[b], single[0]) << "sequence " << b;
    EXPECT_EQ(batched[b].size(), sequences[b].size() + 12);
  }
}

TEST(LlamaModel, SamplingIsSeededAndTopKOneIsGreedy) {
  LlamaNetworkHelper helper(testing::tiny_model_dir());
  auto net = helper.create_network();
  GenerationOptions sample;
  sample.greedy = false;
  sample.temperature = 1.5;
  sample.max_new_tokens = 16;
  sample.stop_at_eos = false;
  sample.seed = 123;
  auto a = helper.generate(*net, {{5, 6, 7}}, sample);
  auto b = helper.generate(*net, {{5, 6, 7}}, sample);
  EXPECT_EQ(a, b);
  sample.seed = 124;
  auto c = helper.generate(*net, {{5, 6, 7}}, sample);
  EXPECT_NE(a, c) << "different seeds should sample different continuations at temperature 1.5";
  sample.top_k = 1;
  GenerationOptions greedy;
  greedy.max_new_tokens = 16;
  greedy.stop_at_eos = false;
  EXPECT_EQ(helper.generate(*net, {{5, 6, 7}}, sample), helper.generate(*net, {{5, 6, 7}}, greedy));
}

TEST(LlamaModel, Qwen2BiasesAreLoadedAndUsed) {
  auto dir = testing::tiny_model_dir("qwen2", {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}});
  auto net = load_llama(dir);
  EXPECT_TRUE(net->layer(0)->self_attn->q_proj->has_bias());
  EXPECT_FALSE(net->layer(0)->self_attn->o_proj->has_bias());
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({{5, 6, 7, 8}}, torch::kInt64);
  auto before = net->forward(ids);
  net->layer(0)->self_attn->k_proj->bias.add_(1.0);
  EXPECT_FALSE(torch::allclose(before, net->forward(ids)));
}

TEST(LlamaModel, Bfloat16ComputeStaysCloseToFloat32) {
  auto dir = testing::tiny_model_dir();
  auto f32 = load_llama(dir);
  LoadOptions options;
  options.compute_dtype = torch::kBFloat16;
  auto bf16 = load_llama(dir, options);
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(some_sequences()[0], torch::kInt64).unsqueeze(0);
  auto a = f32->forward(ids), b = bf16->forward(ids);
  EXPECT_EQ(b.scalar_type(), torch::kFloat32);  // logits are always returned in float32
  double rel = ((a - b).norm() / a.norm()).item<double>();
  EXPECT_LT(rel, 4e-2) << "bf16 logits should be within bf16 precision of fp32";
}

// ---- bad input ----------------------------------------------------------------------------------

fs::path copy_of_tiny_model(const std::string& name) {
  auto dir = testing::temp_dir(name);
  fs::copy(testing::tiny_model_dir(), dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return dir;
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config;
  std::ifstream(dir / "config.json") >> config;
  edit(config);
  std::ofstream(dir / "config.json") << config.dump(2);
}

TEST(LlamaLoaderErrors, MissingTensorIsNamed) {
  auto dir = copy_of_tiny_model("missing_tensor");
  TensorStore store = TensorStore::open(dir);
  NamedTensors kept;
  for (const auto& name : store.names())
    if (name != "model.layers.1.mlp.up_proj.weight") kept.emplace_back(name, store.tensor(name).clone());
  write_safetensors(dir / "model.safetensors", kept);
  expect_error([&] { load_llama(dir); }, {"model.layers.1.mlp.up_proj.weight", "missing", dir.string()});
}

TEST(LlamaLoaderErrors, ShapeMismatchWithConfigIsNamed) {
  auto dir = copy_of_tiny_model("shape_mismatch");
  edit_config(dir, [](nlohmann::json& c) { c["intermediate_size"] = 128; });
  expect_error([&] { load_llama(dir); }, {"model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[128, 64]"});
}

TEST(LlamaLoaderErrors, UnknownArchitectureIsRefused) {
  auto dir = copy_of_tiny_model("unknown_arch");
  edit_config(dir, [](nlohmann::json& c) { c["architectures"] = {"GPTNeoXForCausalLM"}; });
  expect_error([&] { load_llama(dir); }, {"GPTNeoXForCausalLM", "LlamaForCausalLM", "config.json"});
}

TEST(LlamaLoaderErrors, MissingConfigKeyIsNamed) {
  auto dir = copy_of_tiny_model("missing_key");
  edit_config(dir, [](nlohmann::json& c) { c.erase("num_hidden_layers"); });
  expect_error([&] { load_llama(dir); }, {"num_hidden_layers", "config.json"});
}

TEST(LlamaLoaderErrors, TruncatedSafetensorsIsRefused) {
  auto dir = copy_of_tiny_model("truncated");
  auto file = dir / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) / 2);
  expect_error([&] { load_llama(dir); }, {"model.safetensors"});
}

TEST(LlamaLoaderErrors, MissingTokenizerIsNamed) {
  auto dir = copy_of_tiny_model("no_tokenizer");
  fs::remove(dir / "tokenizer.json");
  LlamaNetworkHelper helper(dir);
  expect_error([&] { helper.create_tokenizer(); }, {dir.string(), "tokenizer.json"});
}

TEST(LlamaLoaderErrors, TooManyTokensForTheModel) {
  auto net = load_llama(testing::tiny_model_dir());
  auto ids = torch::zeros({1, 257}, torch::kInt64);
  expect_error([&] { net->forward(ids); }, {"257", "max_position_embeddings", "256"});
}

TEST(PerplexityErrors, EmptyTextFileIsNamed) {
  const fs::path file = testing::temp_dir("empty_text") / "empty.txt";
  std::ofstream(file).close();
  expect_error([&] { read_evaluation_text(file, PerplexityProtocol::kWindows); }, {file.string(), "empty"});
}

TEST(PerplexityErrors, WindowLongerThanTheModelsPositionsIsRefused) {
  auto net = load_llama(testing::tiny_model_dir());
  std::vector<int64_t> ids(2000, 5);
  PerplexityOptions options;
  options.window = 512;  // the tiny model has 256 positions
  options.show_progress = false;
  expect_error([&] { evaluate_perplexity(*net, ids, options); }, {"512", "256"});
}

TEST(Throughput, MeasuresPrefillDecodeAndTheCacheOfTheRun) {
  testing::TinyNet t = testing::tiny_net();
  ThroughputOptions options;
  options.prompt_tokens = 16;
  options.decode_tokens = 4;
  options.repeats = 1;
  const ThroughputResult r = measure_throughput(*t.net, options);
  EXPECT_GT(r.prefill_tokens_per_second, 0);
  EXPECT_GT(r.decode_tokens_per_second, 0);
  EXPECT_NEAR(r.prefill_tokens_per_second * r.prefill_seconds, 16.0, 1e-6);
  // float32 K and V of 2 layers, 2 KV heads of 16 dims, 20 positions.
  EXPECT_EQ(r.kv_cache_bytes, 2 * 2 * 20 * 2 * 16 * 4);
  EXPECT_GT(r.peak_rss_bytes, 0);

  options.prompt_tokens = t.net->max_positions();
  expect_error([&] { measure_throughput(*t.net, options); }, {"exceed", "positions"});
}

TEST(Throughput, PeakMemoryCanBeResetBetweenModels) {
  constexpr int64_t kBytes = 256ll << 20;
  {
    torch::Tensor touched = torch::ones({kBytes}, torch::kUInt8);  // every page written
    EXPECT_GE(peak_rss_bytes(), kBytes);
  }
  const int64_t after_free = peak_rss_bytes();
  if (!reset_peak_rss()) GTEST_SKIP() << "this kernel does not let a process reset its VmHWM";
  EXPECT_LT(peak_rss_bytes(), after_free - kBytes / 2);
}

}  // namespace
}  // namespace ptq
