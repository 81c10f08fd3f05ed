// Builds an HfTokenizer from a Hugging Face tokenizer.json and, when given, its
// tokenizer_config.json (bos/eos tokens, legacy add_bos_token/add_eos_token,
// clean_up_tokenization_spaces, additional_special_tokens).
#pragma once

#include <filesystem>
#include <memory>

#include "network_helpers/tokenizer/hf_tokenizer.h"

namespace ptq {

// `config_file` may be empty (no tokenizer_config.json). Malformed files throw ptq::Error naming
// the file and the key.
std::shared_ptr<HfTokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json,
                                               const std::filesystem::path& config_file = {});

}  // namespace ptq
