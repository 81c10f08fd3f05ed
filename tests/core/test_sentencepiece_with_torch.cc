// SentencePiece tokenizers (tokenizer.model) inside programs that link LibTorch, as users run them.
//
// Debian's libsentencepiece exports its own protobuf 3.14; LibTorch loads the system libprotobuf 3.21.
// Linked into one program the two mixed and every tokenizer.model load aborted the process ("compiled
// against protobuf 3.14.0 ... installed version (3.21.12)"). The tokenizer suite does not link
// LibTorch and never saw it; this suite does, and so does the ptq binary these tests run.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "model_fixtures.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

using testing::run_ptq;

const std::string kSpace = "\xe2\x96\x81";  // "▁"

TEST(SentencePieceWithTorch, LoadsEncodesAndDecodesInThisProcess) {
  const auto tokenizer = load_tokenizer(testing::tiny_sentencepiece_model());
  EXPECT_EQ(tokenizer->kind(), "sentencepiece");
  const int64_t hello = tokenizer->token_id(kSpace + "hello").value();
  const int64_t world = tokenizer->token_id(kSpace + "world").value();
  EXPECT_EQ(tokenizer->encode("hello world", /*add_special_tokens=*/true), (std::vector<int64_t>{1, hello, world}));
  EXPECT_EQ(tokenizer->decode({1, hello, world, 2}, /*skip_special_tokens=*/true), "hello world");
  const std::string with_control = tokenizer->decode({1, hello, world, 2}, /*skip_special_tokens=*/false);
  EXPECT_EQ(with_control.rfind("<s>", 0), 0u) << with_control;
  EXPECT_NE(with_control.find("hello world</s>"), std::string::npos) << with_control;
  // A letter the model lacks is <unk> (id 0) after the word-start piece, not an error.
  EXPECT_EQ(tokenizer->encode("z", false), (std::vector<int64_t>{*tokenizer->token_id(kSpace), 0}));
  EXPECT_FALSE(tokenizer->token_id("absent").has_value());
}

TEST(SentencePieceWithTorch, BadModelFileNamesTheFile) {
  const fs::path bad = testing::temp_dir("bad_sentencepiece") / "tokenizer.model";
  std::ofstream(bad) << "not a model proto";
  testing::expect_error([&] { load_tokenizer(bad); }, {bad.string(), "not a loadable SentencePiece model"});
}

TEST(SentencePieceWithTorch, PtqTokenizeRunsIt) {
  const testing::CommandResult r =
      run_ptq(fmt::format("tokenize --tokenizer '{}' --special --json 'hello world'",
                          testing::tiny_sentencepiece_model().string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["tokenizer"], "sentencepiece");
  EXPECT_EQ(out["ids"].size(), 3u);
  EXPECT_EQ(out["decoded"], "<s>hello world");
}

// A model folder whose only tokenizer is tokenizer.model, through every command that tokenizes.
TEST(SentencePieceWithTorch, ModelFolderWithTokenizerModelRunsEveryCommand) {
  const fs::path model = testing::temp_dir("sentencepiece_model");
  for (const auto& entry : fs::directory_iterator(testing::tiny_model_dir()))
    if (entry.path().filename().string().rfind("tokenizer", 0) != 0) fs::copy(entry.path(), model / entry.path().filename());
  fs::copy_file(testing::tiny_sentencepiece_model(), model / "tokenizer.model");
  const fs::path text = testing::temp_dir("sentencepiece_text") / "text.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 200; ++i) out << (i % 3 ? "hello world " : "world hello ");
  }
  const fs::path recipe = model.parent_path() / "sentencepiece_w8a8_static.json";
  std::ofstream(recipe) << json{{"weight_quant_dtype", "int8"},
                                {"weight_quant_granularity", "per_channel"},
                                {"act_quant_dtype", "int8"},
                                {"act_quant_granularity", "per_tensor"},
                                {"calibration", {{"samples", 4}, {"seq_len", 32}}}}
                               .dump();

  const testing::CommandResult eval =
      run_ptq(fmt::format("eval --model '{}' --data '{}' --window 32 --max-windows 2 --json", model.string(), text.string()));
  ASSERT_EQ(eval.exit_code, 0) << eval.out << eval.err;
  EXPECT_GT(json::parse(eval.out)["ppl"].get<double>(), 1.0);

  const testing::CommandResult generate =
      run_ptq(fmt::format("generate --model '{}' --prompt 'hello world' -n 4 --json", model.string()));
  ASSERT_EQ(generate.exit_code, 0) << generate.out << generate.err;
  EXPECT_EQ(json::parse(generate.out)["outputs"][0]["prompt_ids"].size(), 3u);

  // Static activation scales need calibration text, which the tokenizer.model tokenizes.
  const fs::path out = model.parent_path() / "sentencepiece_w8a8";
  const testing::CommandResult quantize = run_ptq(fmt::format("quantize --model '{}' --config '{}' --calib '{}' --out '{}'",
                                                              model.string(), recipe.string(), text.string(), out.string()));
  ASSERT_EQ(quantize.exit_code, 0) << quantize.out << quantize.err;
  EXPECT_TRUE(fs::exists(out / "tokenizer.model"));
  const testing::CommandResult deployed =
      run_ptq(fmt::format("generate --model '{}' --prompt 'hello world' -n 4 --json", out.string()));
  ASSERT_EQ(deployed.exit_code, 0) << deployed.out << deployed.err;
}

}  // namespace
}  // namespace ptq
