// --out never destroys what ptq did not write (framework/output_folder.h), through the binary as users
// run it: `ptq quantize -o .` in a folder of unrelated files, -o naming the model folder, a folder inside
// it or around it, and the commands that write float folders.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "framework/error.h"
#include "framework/output_folder.h"
#include "model_fixtures.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using testing::run_ptq;

// A copy of the tiny model (tests below may try to destroy it) and a data-free recipe.
struct Workspace {
  fs::path root, model, recipe;
  explicit Workspace(const std::string& name) : root(testing::temp_dir("output_folder_" + name)) {
    model = root / "model";
    fs::copy(testing::tiny_model_dir(), model, fs::copy_options::recursive);
    recipe = root / "w8.json";
    std::ofstream(recipe) << R"({"weight_quant_dtype": "int8", "weight_quant_granularity": "per_channel"})";
  }
  testing::CommandResult quantize(const fs::path& out, const std::string& extra = "") const {
    return run_ptq(fmt::format("--quiet quantize -m '{}' -c '{}' -o '{}' {}", model.string(), recipe.string(),
                               out.string(), extra));
  }
  std::string model_files() const {
    std::string names;
    for (const auto& e : fs::directory_iterator(model)) names += e.path().filename().string() + " ";
    return names;
  }
};

TEST(OutputFolder, UnrelatedFilesAreNeverReplaced) {
  Workspace w("unrelated");
  const fs::path mine = w.root / "mine";
  fs::create_directories(mine / "photos");
  std::ofstream(mine / "notes.txt") << "precious";
  for (const std::string extra : {"", "--force", "--stream"}) {
    const testing::CommandResult r = w.quantize(mine, extra);
    EXPECT_NE(r.exit_code, 0) << extra;
    EXPECT_CONTAINS(r.err, "holds files ptq did not write");
  }
  EXPECT_EQ(testing::read_bytes(mine / "notes.txt"), "precious");
  EXPECT_TRUE(fs::is_directory(mine / "photos"));
  // `-o .` from inside the folder, as the issue was found.
  const testing::CommandResult r = testing::run_command(fmt::format(
      "cd '{}' && '{}' --quiet quantize -m '{}' -c '{}' -o .", mine.string(), PTQ_TEST_PTQ_BINARY, w.model.string(),
      w.recipe.string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(testing::read_bytes(mine / "notes.txt"), "precious");
}

TEST(OutputFolder, TheModelFolderInsideOrAroundIsRefusedEvenWithForce) {
  Workspace w("model");
  const std::string before = w.model_files();
  for (const fs::path& out : {w.model, w.model / "quantized", w.root, w.model / ".." / "model"}) {
    const testing::CommandResult r = w.quantize(out, "--force");
    EXPECT_NE(r.exit_code, 0) << out;
    EXPECT_TRUE(testing::contains(r.err, "the input") || testing::contains(r.err, "contains the input")) << r.err;
  }
  EXPECT_EQ(w.model_files(), before);
  EXPECT_NE(w.quantize(w.model, "--stream").exit_code, 0);
  EXPECT_EQ(w.model_files(), before);
}

TEST(OutputFolder, EmptyOrPtqCheckpointIsReplacedAndAFloatModelNeedsForce) {
  Workspace w("replace");
  const fs::path out = w.root / "out";
  fs::create_directories(out);
  ASSERT_EQ(w.quantize(out).exit_code, 0);  // empty
  ASSERT_EQ(w.quantize(out).exit_code, 0);  // ptq's own checkpoint
  ASSERT_EQ(w.quantize(out, "--stream").exit_code, 0);

  const fs::path other = w.root / "other_model";
  fs::copy(testing::tiny_model_dir(), other, fs::copy_options::recursive);
  const testing::CommandResult refused = w.quantize(other);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_CONTAINS(refused.err, "--force");
  EXPECT_TRUE(fs::exists(other / "model.safetensors"));
  EXPECT_EQ(w.quantize(other, "--force").exit_code, 0);
  EXPECT_TRUE(fs::exists(other / "config.json"));
}

TEST(OutputFolder, EveryWritingCommandFollowsTheRules) {
  Workspace w("commands");
  const fs::path mine = w.root / "mine";
  fs::create_directories(mine);
  std::ofstream(mine / "notes.txt") << "precious";
  EXPECT_NE(run_ptq(fmt::format("--quiet make-random-model --preset tiny -o '{}'", mine.string())).exit_code, 0);
  // compare --save-dir DIR writes DIR/<recipe stem>: here DIR/w8, which holds someone's file.
  const fs::path save_dir = w.root / "saved";
  fs::create_directories(save_dir / "w8");
  std::ofstream(save_dir / "w8" / "notes.txt") << "precious";
  const testing::CommandResult compare =
      run_ptq(fmt::format("--quiet compare -m '{}' --data '{}' --window 32 --max-windows 1 --save-dir '{}' '{}'",
                          w.model.string(), testing::random_words_file("output_folder", 3), save_dir.string(),
                          w.recipe.string()));
  EXPECT_NE(compare.exit_code, 0);
  EXPECT_CONTAINS(compare.err, "holds files ptq did not write");
  EXPECT_EQ(testing::read_bytes(save_dir / "w8" / "notes.txt"), "precious");
  EXPECT_EQ(testing::read_bytes(mine / "notes.txt"), "precious");
  // A float folder ptq made is replaced only with --force.
  const fs::path random = w.root / "random";
  ASSERT_EQ(run_ptq(fmt::format("--quiet make-random-model --preset tiny -o '{}'", random.string())).exit_code, 0);
  EXPECT_NE(run_ptq(fmt::format("--quiet make-random-model --preset tiny -o '{}'", random.string())).exit_code, 0);
  EXPECT_EQ(run_ptq(fmt::format("--quiet make-random-model --preset tiny -o '{}' --force", random.string())).exit_code, 0);
}

TEST(OutputFolder, TheRuleAsAFunction) {
  const fs::path root = testing::temp_dir("output_folder_function");
  fs::create_directories(root / "model");
  std::ofstream(root / "model" / "config.json") << "{}";
  testing::expect_error([&] { check_output_folder(root / "model" / "sub", {{root / "model"}, true}); },
                        {"inside", "never writes into what it reads"});
  testing::expect_error([&] { check_output_folder(root, {{root / "model"}, true}); }, {"contains the input"});
  check_output_folder(root / "absent", {{root / "model"}, false});
  testing::expect_error([&] { check_output_folder(root / "model", {{}, false}); }, {"--force"});
  check_output_folder(root / "model", {{}, true});
}

}  // namespace
}  // namespace ptq
