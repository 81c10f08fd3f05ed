// Tiny random Llama folders for tests that must not depend on ../shared.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace ptq::testing {

// A 2-layer GQA Llama (hidden 64, 4 heads / 2 KV heads, vocab 300) with a byte-level tokenizer, written
// once per process into a temp folder; `overrides` are merged into config.json (e.g. qkv biases).
std::filesystem::path tiny_model_dir(const std::string& name = "tiny", const nlohmann::json& overrides = {});

}  // namespace ptq::testing
