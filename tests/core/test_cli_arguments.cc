// Arguments and results the CLI used to take silently (issue 23): a NaN temperature printed nothing, a
// negative top-k was ignored, -n 0 printed a 300-digit range, and a model with a NaN weight evaluated to
// "ppl nan" with exit status 0.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "framework/safetensors.h"
#include "model_fixtures.h"
#include "test_util.h"

namespace ptq {
namespace {
namespace fs = std::filesystem;
using testing::run_ptq;

std::string generate(const std::string& options) {
  return fmt::format("--quiet generate -m '{}' -p 'hello' {}", testing::tiny_model_dir().string(), options);
}

TEST(CliArguments, GenerateRefusesWhatItCannotHonour) {
  const testing::CommandResult nan_temperature = run_ptq(generate("-n 2 -t nan"));
  EXPECT_NE(nan_temperature.exit_code, 0);
  EXPECT_CONTAINS(nan_temperature.err, "--temperature");
  const testing::CommandResult negative_top_k = run_ptq(generate("-n 2 -t 0.8 --top-k -3"));
  EXPECT_NE(negative_top_k.exit_code, 0);
  EXPECT_CONTAINS(negative_top_k.err, "--top-k");
  EXPECT_LT(negative_top_k.err.size(), 400u) << negative_top_k.err;
  const testing::CommandResult zero_tokens = run_ptq(generate("-n 0"));
  EXPECT_NE(zero_tokens.exit_code, 0);
  EXPECT_CONTAINS(zero_tokens.err, "1048576");
  EXPECT_LT(zero_tokens.err.size(), 400u) << zero_tokens.err;
  EXPECT_EQ(run_ptq(generate("-n 2 -t 0.8 --top-k 3")).exit_code, 0);
}

TEST(CliArguments, EvalOfANonFiniteModelFails) {
  const fs::path model = testing::temp_dir("cli_nan_model") / "model";
  fs::copy(testing::tiny_model_dir(), model, fs::copy_options::recursive);
  {
    const SafetensorsFile file(model / "model.safetensors");
    const SafetensorsTensorInfo& norm = file.info("model.norm.weight");
    ASSERT_EQ(norm.dtype_name, "F32");
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::fstream out(model / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(file.data_offset() + norm.data_begin));
    out.write(reinterpret_cast<const char*>(&nan), sizeof nan);
  }
  const testing::CommandResult r =
      run_ptq(fmt::format("--quiet eval -m '{}' --data '{}' --window 32 --max-windows 1", model.string(),
                          testing::random_words_file("cli_nan_text", 5)));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.err, "non-finite");
}

}  // namespace
}  // namespace ptq
