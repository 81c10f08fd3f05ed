// `ptq compare` (tools/ptq/cmd_compare.cc) on the tiny model: one row per recipe after float, float's
// change is 0 and the baseline's gap ratio 1, the numbers are those of `ptq eval` and
// `ptq quantize --eval-data` (the same code path), a bad config path or --baseline is an error naming
// it before anything runs, and a recipe that fails at quantization time is reported without losing the
// others. The ptq binary comes from tests/CMakeLists.txt as PTQ_TEST_PTQ_BINARY.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <ptq/build_config.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model_fixtures.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;


using testing::contains;
using testing::run_ptq;

// configs/<base>.json with `changes` merged, written as <name>.json (the recipe's row name).
std::string recipe(const std::string& base, const std::string& name, const json& changes) {
  json config = json::parse(std::ifstream(fs::path(PTQ_SOURCE_DIR) / "configs" / (base + ".json")));
  config.merge_patch(changes);
  static const fs::path dir = testing::temp_dir("compare_cli_configs");
  const fs::path path = dir / (name + ".json");
  std::ofstream(path) << config.dump(2);
  return path.string();
}

// The tiny model's hidden size is 64: groups of 32, and a calibration that fits its 256 positions.
const json kSmallCalibration = {{"calibration", {{"samples", 4}, {"seq_len", 64}}}};

class CompareCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::tiny_model_dir().string();
    heldout_ = testing::random_words_file("compare_cli_heldout", 11, 2000);
    other_ = testing::random_words_file("compare_cli_other", 12, 2000);
    calib_ = testing::random_words_file("compare_cli_calib", 13, 3000);
    rtn4_ = recipe("w4a16_rtn_g128", "w4_rtn_g32", {{"group_size", 32}});
    w8_ = (fs::path(PTQ_SOURCE_DIR) / "configs" / "w8a16_rtn.json").string();
    json gptq_changes = kSmallCalibration;
    gptq_changes["group_size"] = 32;
    gptq4_ = recipe("w4a16_gptq_g128", "w4_gptq_g32", gptq_changes);
  }
  // Shared options: a few short windows of two texts.
  std::string common() const {
    return fmt::format("--model '{}' --data '{}' --data '{}' --window 32 --max-windows 6 --calib '{}'", model_,
                       heldout_, other_, calib_);
  }
  std::string model_, heldout_, other_, calib_, rtn4_, w8_, gptq4_;
};

// The data rows of an aligned table: lines after the rule under the header.
std::vector<std::string> table_rows(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream in(out);
  bool after_rule = false;
  for (std::string line; std::getline(in, line);) {
    if (after_rule && !line.empty()) rows.push_back(line);
    if (!line.empty() && line.find_first_not_of('-') == std::string::npos) after_rule = true;
  }
  return rows;
}

TEST_F(CompareCli, TablePrintsFloatThenEveryRecipe) {
  const CommandResult r =
      run_ptq(fmt::format("compare {} --baseline w4_rtn_g32 '{}' '{}' '{}'", common(), rtn4_, w8_, gptq4_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> rows = table_rows(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  EXPECT_EQ(rows[0].rfind("float ", 0), 0u) << rows[0];
  EXPECT_EQ(rows[1].rfind("w4_rtn_g32 ", 0), 0u) << rows[1];
  EXPECT_EQ(rows[2].rfind("w8a16_rtn ", 0), 0u) << rows[2];
  EXPECT_EQ(rows[3].rfind("w4_gptq_g32 ", 0), 0u) << rows[3];
  EXPECT_CONTAINS(rows[0], "+0.000%");  // float vs itself
  EXPECT_CONTAINS(r.out, "gap vs w4_rtn_g32");
  EXPECT_CONTAINS(rows[1], " 1.00");  // the baseline's own ratio
  EXPECT_CONTAINS(r.out, "compare_cli_heldout/calibration ppl");  // both texts are calibration.txt: folder kept
  // Progress per recipe on stderr, never on stdout.
  EXPECT_CONTAINS(r.err, "[4/4] w4_gptq_g32");
  EXPECT_FALSE(contains(r.out, "[ptq]"));

  const CommandResult md = run_ptq(fmt::format("--quiet compare {} --markdown '{}'", common(), rtn4_));
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_EQ(md.out.rfind("| recipe | weight bytes | quantize s |", 0), 0u) << md.out;
  EXPECT_CONTAINS(md.out, "| float |");
  EXPECT_CONTAINS(md.out, "| w4_rtn_g32 |");
  EXPECT_FALSE(contains(md.err, "[1/2]")) << "--quiet: no progress";
}

TEST_F(CompareCli, JsonHasTheFieldsAndMatchesEvalAndQuantize) {
  const CommandResult r =
      run_ptq(fmt::format("compare {} --baseline w4_rtn_g32 --json '{}' '{}' '{}'", common(), rtn4_, w8_, gptq4_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("baseline"), "w4_rtn_g32");
  EXPECT_EQ(j.at("window"), 32);
  EXPECT_EQ(j.at("max_windows"), 6);
  ASSERT_EQ(j.at("data").size(), 2u);
  EXPECT_EQ(j.at("data")[0].at("path"), heldout_);
  EXPECT_GT(j.at("data")[0].at("tokens").get<int64_t>(), 32 * 6);
  const json& rows = j.at("rows");
  ASSERT_EQ(rows.size(), 4u);
  const std::vector<std::string> names = {"float", "w4_rtn_g32", "w8a16_rtn", "w4_gptq_g32"};
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(names[i]);
    const json& row = rows[i];
    EXPECT_EQ(row.at("recipe"), names[i]);
    EXPECT_TRUE(row.at("ok").get<bool>());
    EXPECT_GT(row.at("weight_bytes").get<int64_t>(), 0);
    ASSERT_EQ(row.at("eval").size(), 2u);
    for (const json& e : row.at("eval")) {
      EXPECT_GT(e.at("ppl").get<double>(), 1.0);
      ASSERT_TRUE(e.contains("change_percent"));
      ASSERT_TRUE(e.contains("gap_ratio"));
    }
    if (i == 0) {
      EXPECT_TRUE(row.at("config").is_null());
      EXPECT_TRUE(row.at("quantize_seconds").is_null());
    } else {
      EXPECT_GE(row.at("quantize_seconds").get<double>(), 0.0);
      EXPECT_GT(row.at("quantized_layers").get<int64_t>(), 0);
    }
  }
  for (const json& e : rows[0].at("eval")) {
    EXPECT_EQ(e.at("change_percent").get<double>(), 0.0);
    EXPECT_EQ(e.at("gap_ratio").get<double>(), 0.0);
  }
  for (const json& e : rows[1].at("eval")) EXPECT_DOUBLE_EQ(e.at("gap_ratio").get<double>(), 1.0);
  // 8-bit per-channel is smaller than float, 4-bit g32 smaller still; GPTQ stores what RTN stores.
  EXPECT_LT(rows[2].at("weight_bytes").get<int64_t>(), rows[0].at("weight_bytes").get<int64_t>());
  EXPECT_LT(rows[1].at("weight_bytes").get<int64_t>(), rows[2].at("weight_bytes").get<int64_t>());
  EXPECT_EQ(rows[3].at("weight_bytes"), rows[1].at("weight_bytes"));
  EXPECT_EQ(rows[3].at("composition"), json::array({"gptq"}));

  // Float is `ptq eval`'s number; a recipe is `ptq quantize --eval-data`'s (same load/apply/convert).
  const CommandResult eval = run_ptq(
      fmt::format("eval --model '{}' --data '{}' --window 32 --max-windows 6 --json", model_, heldout_));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_EQ(json::parse(eval.out).at("ppl"), rows[0].at("eval")[0].at("ppl"));
  const fs::path out = testing::temp_dir("compare_cli_quantized");
  const CommandResult quantize = run_ptq(fmt::format(
      "quantize --model '{}' --config '{}' --out '{}' --calib '{}' --eval-data '{}' --window 32 --max-windows 6 --json",
      model_, gptq4_, (out / "q").string(), calib_, heldout_));
  ASSERT_EQ(quantize.exit_code, 0) << quantize.err;
  const json q = json::parse(quantize.out);
  EXPECT_EQ(q.at("eval").at("float_ppl"), rows[0].at("eval")[0].at("ppl"));
  EXPECT_EQ(q.at("eval").at("quantized_ppl"), rows[3].at("eval")[0].at("ppl"));

  // With --save-dir the checkpoints are written, and their tensors are what weight_bytes counted
  // (the files add only the safetensors header).
  const fs::path saved = testing::temp_dir("compare_cli_saved");
  const CommandResult save = run_ptq(fmt::format("compare {} --save-dir '{}' --json '{}'", common(), saved.string(), rtn4_));
  ASSERT_EQ(save.exit_code, 0) << save.err;
  const json s = json::parse(save.out).at("rows")[1];
  EXPECT_TRUE(fs::is_regular_file(saved / "w4_rtn_g32" / "config.json"));
  const int64_t file_bytes = s.at("file_bytes").get<int64_t>();
  const int64_t weight_bytes = s.at("weight_bytes").get<int64_t>();
  EXPECT_GT(file_bytes, weight_bytes);
  EXPECT_LT(file_bytes, weight_bytes + 64 * 1024) << "the header is a few KB";
}

// `ptq bench` counts a quantized model's weights in their checkpoint form (packed codes, scales, zero
// points), as `ptq compare` does: it used to count only parameters and buffers, which left the codes out.
TEST_F(CompareCli, BenchCountsQuantizedWeightsAsCompareDoes) {
  const fs::path saved = testing::temp_dir("bench_cli_saved");
  const CommandResult save = run_ptq(fmt::format("compare {} --save-dir '{}' --json '{}'", common(), saved.string(), rtn4_));
  ASSERT_EQ(save.exit_code, 0) << save.err;
  const json rows = json::parse(save.out).at("rows");
  const CommandResult bench = run_ptq(fmt::format(
      "bench -m '{}' --compare '{}' --prompt-tokens 4 --decode-tokens 2 --repeats 1 --json", model_,
      (saved / "w4_rtn_g32").string()));
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  const json models = json::parse(bench.out).at("models");
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].at("weight_bytes"), rows[0].at("weight_bytes"));
  EXPECT_EQ(models[1].at("weight_bytes"), rows[1].at("weight_bytes"));
  EXPECT_LT(models[1].at("weight_bytes").get<int64_t>(), models[0].at("weight_bytes").get<int64_t>());
}

TEST_F(CompareCli, OneBaselinePerWeightWidth) {
  const CommandResult r = run_ptq(fmt::format("--quiet compare {} --baseline w4_rtn_g32 --baseline w8a16_rtn --json '{}' '{}' '{}'",
                                              common(), rtn4_, w8_, gptq4_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out).at("rows");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].at("baseline"), "w4_rtn_g32");  // float: 0 against any
  EXPECT_EQ(rows[1].at("baseline"), "w4_rtn_g32");
  EXPECT_EQ(rows[2].at("baseline"), "w8a16_rtn");
  EXPECT_EQ(rows[3].at("baseline"), "w4_rtn_g32");
  EXPECT_DOUBLE_EQ(rows[2].at("eval")[0].at("gap_ratio").get<double>(), 1.0);
  EXPECT_EQ(rows[0].at("eval")[0].at("gap_ratio").get<double>(), 0.0);

  const CommandResult twice = run_ptq(fmt::format("compare {} --baseline w4_rtn_g32 --baseline w4_gptq_g32 '{}' '{}'",
                                                  common(), rtn4_, gptq4_));
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_CONTAINS(twice.err, "a second baseline for int4 weights");
}

TEST_F(CompareCli, BadConfigPathIsAnErrorNamingIt) {
  const CommandResult r = run_ptq(fmt::format("compare {} '{}' /nonexistent/w4_typo.json", common(), rtn4_));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "/nonexistent/w4_typo.json");
  EXPECT_CONTAINS(r.err, "no such file");
  EXPECT_EQ(r.out, "");  // nothing ran
  EXPECT_FALSE(contains(r.err, "[1/")) << "checked before the float model is evaluated";

  const CommandResult bad_key = run_ptq(fmt::format(
      "compare {} '{}'", common(), recipe("w4a16_rtn_g128", "bad_bits", {{"weight_quant_dtype", "int5"}})));
  EXPECT_EQ(bad_key.exit_code, 1);
  EXPECT_CONTAINS(bad_key.err, "bad_bits.json");

  const CommandResult baseline = run_ptq(fmt::format("compare {} --baseline rtn '{}'", common(), rtn4_));
  EXPECT_EQ(baseline.exit_code, 1);
  EXPECT_CONTAINS(baseline.err, "--baseline rtn");
}

TEST_F(CompareCli, RecipeThatFailsWhileQuantizingKeepsTheOthers) {
  // --calib is not given here, so this recipe's own calibration file is read, and it does not exist.
  json changes = kSmallCalibration;
  changes["calibration"]["dataset"] = "/nonexistent/calibration.txt";
  const std::string broken = recipe("w4a16_gptq_g128", "broken_calib", changes);
  const CommandResult r = run_ptq(fmt::format("compare --model '{}' --data '{}' --window 32 --max-windows 2 '{}' '{}'",
                                              model_, heldout_, broken, rtn4_));
  EXPECT_EQ(r.exit_code, 1);
  const std::vector<std::string> rows = table_rows(r.out);
  ASSERT_GE(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[1].rfind("broken_calib ", 0), 0u);
  EXPECT_CONTAINS(rows[1], "failed");
  EXPECT_EQ(rows[2].rfind("w4_rtn_g32 ", 0), 0u);
  EXPECT_CONTAINS(r.out, "/nonexistent/calibration.txt");
  EXPECT_CONTAINS(r.err, "1 of 2 recipes failed: broken_calib");
}

}  // namespace
}  // namespace ptq
