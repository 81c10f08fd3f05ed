// Layer-streamed quantization and resume (framework/stream_quantize.h), through the `ptq` binary as a
// user runs it: `ptq quantize --stream` must write the very bytes `ptq quantize` writes, and a run
// killed with SIGKILL after layer k and continued with --resume must too.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "framework/deferred_weights.h"
#include "framework/safetensors.h"
#include "model_fixtures.h"
#include "network_helpers/llama/random_model.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

#ifndef PTQ_TEST_PTQ_BINARY
#define PTQ_TEST_PTQ_BINARY "ptq"
#endif

struct Child {
  pid_t pid = -1;
  fs::path log;
};

// Starts the ptq binary with these arguments (stdout and stderr into `log`), with `env` added.
Child start_ptq(const std::vector<std::string>& arguments, const fs::path& log,
                const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> argv_storage = {PTQ_TEST_PTQ_BINARY};
  argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [key, value] : env) ::setenv(key.c_str(), value.c_str(), 1);
    ::setenv("OMP_NUM_THREADS", "1", 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return {pid, log};
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs ptq to completion; returns the exit status and fills `output`.
int run_ptq_logged(const std::vector<std::string>& arguments, const fs::path& log, std::string* output = nullptr,
            const std::map<std::string, std::string>& env = {}) {
  Child child = start_ptq(arguments, log, env);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  if (output) *output = read_text(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every file of `a` has a byte-identical twin in `b`, and neither has other files.
void expect_same_folders(const fs::path& a, const fs::path& b) {
  std::map<std::string, std::string> files_a, files_b;
  for (const auto& e : fs::directory_iterator(a)) files_a[e.path().filename().string()] = read_text(e.path());
  for (const auto& e : fs::directory_iterator(b)) files_b[e.path().filename().string()] = read_text(e.path());
  std::vector<std::string> names_a, names_b;
  for (const auto& [n, _] : files_a) names_a.push_back(n);
  for (const auto& [n, _] : files_b) names_b.push_back(n);
  ASSERT_EQ(names_a, names_b) << a << " vs " << b;
  for (const auto& [name, bytes] : files_a)
    EXPECT_TRUE(bytes == files_b[name]) << name << " differs between " << a << " and " << b;
  // And tensor by tensor, for a readable failure.
  const TensorStore sa = TensorStore::open(a), sb = TensorStore::open(b);
  ASSERT_EQ(sa.names(), sb.names());
  for (const auto& name : sa.names()) EXPECT_TRUE(torch::equal(sa.tensor(name), sb.tensor(name))) << name;
}

// A recipe for the tiny models (hidden 64: groups of 32), with calibration from a random-words file.
fs::path write_recipe(const std::string& name, json overrides) {
  json config = {{"version", 1},
                 {"mode", "quantize"},
                 {"backend", "reference"},
                 {"weight_quant_dtype", "int4"},
                 {"weight_quant_granularity", "per_group"},
                 {"group_size", 32},
                 {"weight_symmetric", false},
                 {"calibration",
                  {{"dataset", testing::random_words_file("stream_calibration", 11)},
                   {"samples", 6},
                   {"seq_len", 24},
                   {"seed", 3}}}};
  if (overrides.is_object()) config.update(overrides);
  const fs::path path = testing::temp_dir("stream_recipe_" + name) / "recipe.json";
  std::ofstream(path) << config.dump(2);
  return path;
}

fs::path six_layer_model() { return testing::tiny_model_dir("stream6", {{"num_hidden_layers", 6}}); }

// A bf16 model with tied embeddings: the stored-dtype narrowing and the tied lm_head rules.
fs::path tied_bf16_model() {
  static const fs::path dir = [] {
    const fs::path d = testing::temp_dir("model_stream_tied_bf16");
    json config = preset_config("tiny");
    config["num_hidden_layers"] = 3;
    config["tie_word_embeddings"] = true;
    RandomModelOptions options;
    options.dtype = "bfloat16";
    options.seed = 5;
    options.init_std = 0.1;
    write_random_llama(d, config, options);
    return d;
  }();
  return dir;
}

void expect_streamed_equals_in_memory(const fs::path& model, const fs::path& recipe, const std::string& tag) {
  const fs::path work = testing::temp_dir("stream_equal_" + tag);
  const fs::path plain = work / "plain", streamed = work / "streamed";
  std::string output;
  ASSERT_EQ(run_ptq_logged({"quantize", "-m", model.string(), "-c", recipe.string(), "-o", plain.string()}, work / "plain.log",
                    &output),
            0)
      << output;
  ASSERT_EQ(run_ptq_logged({"quantize", "--stream", "-m", model.string(), "-c", recipe.string(), "-o", streamed.string()},
                    work / "streamed.log", &output),
            0)
      << output;
  EXPECT_NE(output.find("layer-streamed"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(work / "streamed.partial")) << "the progress folder must go once the checkpoint is complete";
  expect_same_folders(plain, streamed);
}

TEST(StreamQuantize, RtnMatchesInMemoryByteForByte) {
  expect_streamed_equals_in_memory(six_layer_model(), write_recipe("rtn", {}), "rtn");
}

TEST(StreamQuantize, AwqMatchesInMemoryByteForByte) {
  expect_streamed_equals_in_memory(
      six_layer_model(),
      write_recipe("awq", {{"outliers_suppression", "awq"}, {"algo_args", {{"awq", {{"grid", 5}, {"clip_tokens", 64}}}}}}),
      "awq");
}

TEST(StreamQuantize, GptqMatchesInMemoryByteForByte) {
  expect_streamed_equals_in_memory(six_layer_model(), write_recipe("gptq", {{"precision_recovery", "gptq"}}), "gptq");
}

TEST(StreamQuantize, SmoothQuantStaticW8A8WithKv8MatchesInMemoryByteForByte) {
  expect_streamed_equals_in_memory(six_layer_model(),
                                   write_recipe("sq_kv8", {{"weight_quant_dtype", "int8"},
                                                           {"weight_quant_granularity", "per_channel"},
                                                           {"weight_symmetric", true},
                                                           {"act_quant_dtype", "int8"},
                                                           {"act_quant_granularity", "per_tensor"},
                                                           {"kvcache_quant_dtype", "int8"},
                                                           {"outliers_suppression", "smooth"}}),
                                   "sq_kv8");
}

TEST(StreamQuantize, TiedBf16ModelMatchesInMemoryByteForByte) {
  expect_streamed_equals_in_memory(tied_bf16_model(), write_recipe("rtn_tied", {}), "tied_rtn");
  expect_streamed_equals_in_memory(tied_bf16_model(), write_recipe("awq_tied", {{"outliers_suppression", "awq"}}),
                                   "tied_awq");
}

// Starts a streamed run that stops itself (SIGSTOP) once the progress of `stop_step` is recorded, then
// kills it with SIGKILL: what a crash at that point leaves behind.
void run_and_kill_after(const std::vector<std::string>& arguments, int64_t stop_step, const fs::path& log) {
  Child child = start_ptq(arguments, log, {{"PTQ_TEST_STOP_AFTER_STEP", std::to_string(stop_step)}});
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, WUNTRACED), child.pid);
  ASSERT_TRUE(WIFSTOPPED(status)) << "the run ended before layer " << stop_step << ":\n" << read_text(log);
  ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(StreamQuantize, ResumesAfterSigkillBitIdentical) {
  const fs::path model = six_layer_model();
  const fs::path recipe =
      write_recipe("awq_resume", {{"outliers_suppression", "awq"}, {"algo_args", {{"awq", {{"grid", 5}}}}}});
  const fs::path work = testing::temp_dir("stream_resume");
  const fs::path reference = work / "reference", out = work / "out";
  std::string output;
  ASSERT_EQ(run_ptq_logged({"quantize", "-m", model.string(), "-c", recipe.string(), "-o", reference.string()},
                    work / "reference.log", &output),
            0)
      << output;
  for (int64_t stop : {int64_t{2}, int64_t{-2}, int64_t{5}}) {  // mid-way, after the embedding, after the last layer
    SCOPED_TRACE("killed after step " + std::to_string(stop));
    const std::vector<std::string> args = {"quantize", "--stream", "-m", model.string(), "-c", recipe.string(),
                                           "-o", out.string()};
    run_and_kill_after(args, stop, work / "killed.log");
    const fs::path partial = work / "out.partial";
    ASSERT_TRUE(fs::is_regular_file(partial / "progress.json"));
    EXPECT_FALSE(fs::exists(out));
    const json progress = json::parse(read_text(partial / "progress.json"));
    EXPECT_EQ(progress.at("next_layer").get<int64_t>(), stop == -2 ? 0 : stop + 1);

    std::vector<std::string> resume = args;
    resume.push_back("--resume");
    ASSERT_EQ(run_ptq_logged(resume, work / "resumed.log", &output), 0) << output;
    if (stop >= 0 && stop + 1 < 6) {
      EXPECT_NE(output.find(fmt::format("resumed at layer {}", stop + 1)), std::string::npos) << output;
    } else if (stop + 1 == 6) {
      EXPECT_NE(output.find("resumed after the last layer"), std::string::npos) << output;
    }
    EXPECT_FALSE(fs::exists(partial));
    expect_same_folders(reference, out);
    fs::remove_all(out);
  }
}

TEST(StreamQuantize, ResumeRefusesADifferentJob) {
  const fs::path model = six_layer_model();
  const fs::path recipe = write_recipe("rtn_refuse", {});
  const fs::path other = write_recipe("rtn_refuse_g64", {{"group_size", 64}});
  const fs::path work = testing::temp_dir("stream_refuse");
  const fs::path out = work / "out";
  run_and_kill_after({"quantize", "--stream", "-m", model.string(), "-c", recipe.string(), "-o", out.string()}, 1,
                     work / "killed.log");
  std::string output;
  EXPECT_NE(run_ptq_logged({"quantize", "--resume", "-m", model.string(), "-c", other.string(), "-o", out.string()},
                    work / "refused.log", &output),
            0);
  EXPECT_NE(output.find("quantized a different job"), std::string::npos) << output;
  // Nothing to resume at all:
  EXPECT_NE(run_ptq_logged({"quantize", "--resume", "-m", model.string(), "-c", recipe.string(), "-o",
                     (work / "never_started").string()},
                    work / "nothing.log", &output),
            0);
  EXPECT_NE(output.find("nothing to resume"), std::string::npos) << output;
  // The refused resume left the record alone: the right arguments still continue it.
  EXPECT_EQ(run_ptq_logged({"quantize", "--resume", "-m", model.string(), "-c", recipe.string(), "-o", out.string()},
                    work / "resumed.log", &output),
            0)
      << output;
  EXPECT_TRUE(fs::is_regular_file(out / "model.safetensors"));
}

TEST(StreamQuantize, RefusesASecondRunOnTheSameOutput) {
  const fs::path model = six_layer_model();
  const fs::path recipe = write_recipe("rtn_second", {});
  const fs::path work = testing::temp_dir("stream_second");
  const std::vector<std::string> args = {"quantize", "--stream", "-m", model.string(), "-c", recipe.string(), "-o",
                                         (work / "out").string()};
  Child first = start_ptq(args, work / "first.log", {{"PTQ_TEST_STOP_AFTER_STEP", "0"}});
  int status = 0;
  ASSERT_EQ(::waitpid(first.pid, &status, WUNTRACED), first.pid);
  ASSERT_TRUE(WIFSTOPPED(status)) << read_text(work / "first.log");
  std::string output;
  EXPECT_NE(run_ptq_logged(args, work / "second.log", &output), 0);
  EXPECT_NE(output.find("another ptq run is writing this checkpoint"), std::string::npos) << output;
  ::kill(first.pid, SIGKILL);
  ::waitpid(first.pid, &status, 0);
  // The kill released the lock: the first run's progress continues.
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  EXPECT_EQ(run_ptq_logged(resume, work / "resumed.log", &output), 0) << output;
  EXPECT_FALSE(fs::exists(work / "out.partial.lock"));
}

// A kill at an arbitrary instant -- mid-write included -- must leave something --resume continues
// (or, when nothing was recorded yet, that a fresh run redoes).
TEST(StreamQuantize, ResumesAfterSigkillAtRandomInstants) {
  const fs::path model = six_layer_model();
  const fs::path recipe = write_recipe("gptq_random_kill", {{"precision_recovery", "gptq"}});
  const fs::path work = testing::temp_dir("stream_random_kill");
  const fs::path reference = work / "reference", out = work / "out";
  std::string output;
  ASSERT_EQ(run_ptq_logged({"quantize", "-m", model.string(), "-c", recipe.string(), "-o", reference.string()},
                    work / "reference.log", &output),
            0)
      << output;
  const std::vector<std::string> args = {"quantize", "--stream", "-m", model.string(), "-c", recipe.string(),
                                         "-o", out.string()};
  for (int delay_ms : {150, 400, 700, 1000, 1300}) {
    SCOPED_TRACE("killed after " + std::to_string(delay_ms) + " ms");
    fs::remove_all(out);
    Child child = start_ptq(args, work / "killed.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child.pid, SIGKILL);
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    if (fs::exists(out)) {  // it finished before the kill
      expect_same_folders(reference, out);
      continue;
    }
    std::vector<std::string> again = args;
    if (fs::is_regular_file(work / "out.partial" / "progress.json")) again.push_back("--resume");
    ASSERT_EQ(run_ptq_logged(again, work / "again.log", &output), 0) << output;
    expect_same_folders(reference, out);
  }
}

TEST(DeferredWeights, PlaceholdersKeepShapesAndCostNothing) {
  torch::Tensor p = deferred_placeholder({4096, 4096}, torch::kBFloat16);
  EXPECT_EQ(p.sizes(), torch::IntArrayRef({4096, 4096}));
  EXPECT_EQ(p.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(is_deferred(p));
  EXPECT_TRUE(torch::isnan(p[7][9]).item<bool>()) << "an accidental read must be NaN, not made-up weights";
  EXPECT_FALSE(is_deferred(torch::zeros({4, 4})));
  EXPECT_ANY_THROW(p.add_(1)) << "in-place writes into a placeholder must fail";
}

TEST(SafetensorsShardWriter, AddFromFileWritesTheSameBytesAsAdd) {
  const fs::path dir = testing::temp_dir("add_from_file");
  torch::manual_seed(1);
  NamedTensors tensors = {{"a", torch::randn({5, 7})}, {"b", torch::randint(0, 100, {9}, torch::kInt8)},
                          {"c", torch::randn({3}).to(torch::kBFloat16)}, {"d", torch::randn({})}};
  write_safetensors(dir / "source.safetensors", tensors);  // no checksum record: computed from the file
  auto source = std::make_shared<const SafetensorsFile>(dir / "source.safetensors");
  {
    SafetensorsShardWriter writer(dir / "memory", 40);
    for (const auto& [name, t] : tensors) writer.add(name, t);
    writer.finish();
  }
  {
    SafetensorsShardWriter writer(dir / "file", 40);
    for (const auto& [name, t] : tensors) writer.add_from_file(name, source, name);
    writer.finish();
  }
  expect_same_folders(dir / "memory", dir / "file");
}

}  // namespace
}  // namespace ptq
