// config.json parsing: both spellings of RoPE and dtype fields, Qwen2/Mistral specifics, llama3 scaling.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "framework/error.h"
#include "network_helpers/llama/model_spec.h"
#include "network_helpers/llama/random_model.h"
#include "network_helpers/llama/rotary.h"

namespace ptq {
namespace {

TEST(ModelSpec, ClassicAndTransformers5SpellingsAgree) {
  nlohmann::json classic = preset_config("tiny");
  classic["rope_theta"] = 500000.0;
  classic["torch_dtype"] = "bfloat16";
  nlohmann::json v5 = preset_config("tiny");
  v5.erase("rope_theta");
  v5["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
  v5["dtype"] = "bfloat16";
  ModelSpec a = ModelSpec::from_json(classic, "classic"), b = ModelSpec::from_json(v5, "v5");
  EXPECT_EQ(a.rope_theta, 500000.0);
  EXPECT_EQ(b.rope_theta, 500000.0);
  EXPECT_EQ(a.weights_dtype, "bfloat16");
  EXPECT_EQ(b.weights_dtype, "bfloat16");
  EXPECT_EQ(a.head_dim, 16);
  EXPECT_EQ(a.num_kv_heads, 2);
}

TEST(ModelSpec, ArchitectureSpecifics) {
  nlohmann::json qwen = preset_config("tiny");
  qwen["architectures"] = {"Qwen2ForCausalLM"};
  ModelSpec q = ModelSpec::from_json(qwen, "qwen");
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_FALSE(q.o_bias);
  nlohmann::json mistral = preset_config("tiny");
  mistral["architectures"] = {"MistralForCausalLM"};
  mistral["sliding_window"] = 4096;
  EXPECT_EQ(ModelSpec::from_json(mistral, "mistral").sliding_window.value_or(0), 4096);
  nlohmann::json llama = preset_config("tiny");
  llama["attention_bias"] = true;
  ModelSpec l = ModelSpec::from_json(llama, "llama");
  EXPECT_TRUE(l.qkv_bias && l.o_bias);
}

TEST(ModelSpec, BadConfigsNameTheKey) {
  nlohmann::json c = preset_config("tiny");
  c["num_key_value_heads"] = 3;
  try {
    ModelSpec::from_json(c, "cfg.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_key_value_heads 3"), std::string::npos) << e.what();
  }
  c = preset_config("tiny");
  c["hidden_size"] = "wide";
  try {
    ModelSpec::from_json(c, "cfg.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"hidden_size\""), std::string::npos) << e.what();
  }
  c = preset_config("tiny");
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THROW(ModelSpec::from_json(c, "cfg.json"), Error);
}

TEST(Rotary, Llama3ScalingKeepsHighFrequenciesAndSlowsLowOnes) {
  nlohmann::json c = preset_config("tiny");
  c["hidden_size"] = 512;
  c["num_attention_heads"] = 4;  // head_dim 128 like Llama 3
  c["rope_theta"] = 500000.0;
  ModelSpec plain = ModelSpec::from_json(c, "plain");
  c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelSpec scaled = ModelSpec::from_json(c, "scaled");
  auto a = rope_inverse_frequencies(plain), b = rope_inverse_frequencies(scaled);
  ASSERT_EQ(a.size(0), 64);
  // Wavelength 2*pi/f below 8192/4 = 2048 tokens: unchanged. Above 8192: divided by the factor.
  for (int64_t i = 0; i < 64; ++i) {
    double f = a[i].item<double>(), g = b[i].item<double>(), wavelen = 2 * M_PI / f;
    if (wavelen < 2048) EXPECT_NEAR(g, f, 1e-9 + 1e-6 * f) << i;
    if (wavelen > 8192) EXPECT_NEAR(g, f / 8.0, 1e-9 + 1e-6 * f) << i;
    if (wavelen >= 2048 && wavelen <= 8192) {
      EXPECT_LE(g, f * (1 + 1e-6));
      EXPECT_GE(g, f / 8.0 * (1 - 1e-6));
    }
  }
}

TEST(Rotary, RotationPreservesNormsAndRelativePositions) {
  nlohmann::json c = preset_config("tiny");
  ModelSpec spec = ModelSpec::from_json(c, "tiny");
  auto inv = rope_inverse_frequencies(spec);
  auto q = torch::randn({1, 1, 1, spec.head_dim}), k = torch::randn({1, 1, 1, spec.head_dim});
  auto dot = [&](int64_t pq, int64_t pk) {
    auto [cq, sq] = rope_cos_sin(inv, torch::tensor({{pq}}, torch::kInt64));
    auto [ck, sk] = rope_cos_sin(inv, torch::tensor({{pk}}, torch::kInt64));
    return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item<double>();
  };
  EXPECT_NEAR(dot(10, 3), dot(107, 100), 1e-4);  // depends only on the distance
  auto [c5, s5] = rope_cos_sin(inv, torch::tensor({{5}}, torch::kInt64));
  EXPECT_NEAR(apply_rope(q, c5, s5).norm().item<double>(), q.norm().item<double>(), 1e-5);
}

}  // namespace
}  // namespace ptq
