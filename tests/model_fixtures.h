// Tiny random Llama folders for tests that must not depend on ../shared.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <string>

#include "network_helpers/llama/llama_network_helper.h"

namespace ptq::testing {

// A 2-layer GQA Llama (hidden 64, 4 heads / 2 KV heads, vocab 300) with a byte-level tokenizer, written
// once per process into a temp folder; `overrides` are merged into config.json (e.g. qkv biases).
std::filesystem::path tiny_model_dir(const std::string& name = "tiny", const nlohmann::json& overrides = {});

// A float network on tiny_model_dir() and its helper (what algorithm tests apply to).
struct TinyNet {
  std::shared_ptr<LlamaNetworkHelper> helper;
  std::shared_ptr<CausalLM> net;
};
TinyNet tiny_net();

// A recipe from JSON (errors name it "test config").
PTQConfig config_from(const nlohmann::json& recipe);

// [count, length] ids of random_words(seed, ...) through the helper's tokenizer: held-out text of the
// tiny models' calibration distribution.
torch::Tensor random_word_ids(NetworkHelper& helper, unsigned seed, int64_t count, int64_t length);

// Random lowercase words (1-8 letters, a newline every 11 words): the byte-level tokenizer turns them
// into varied token sequences -- calibration text for the tiny models.
std::string random_words(unsigned seed, int words);
// random_words(seed, words) written once per process to a file named after `name`; returns its path.
std::string random_words_file(const std::string& name, unsigned seed, int words = 3000);

// A tiny SentencePiece BPE model (tokenizer.model bytes, serialized by hand: the core suite has no
// trainer): <unk> <s> </s>, "▁", the letters of "hello world", and merges up to "▁hello" and "▁world".
// Written once per process; returns the file's path.
std::filesystem::path tiny_sentencepiece_model();

// |a - b| / |b| (Frobenius norms), in float64 whatever the inputs' dtype (half inputs would otherwise
// round the difference itself).
double relative_difference(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace ptq::testing
