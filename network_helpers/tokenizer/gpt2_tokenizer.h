// GPT-2's original tokenizer files: encoder.json (token -> id) and vocab.bpe (merges, one "a b" per
// line after a "#version" line), as OpenAI's encoder.py reads them. Built as an HfTokenizer with
// GPT-2's ByteLevel pre-tokenizer and decoder; "<|endoftext|>" is its one special token (BOS = EOS
// = 50256), recognised inside text as transformers' GPT2Tokenizer does. No BOS/EOS is added by
// encode.
#pragma once

#include <filesystem>
#include <memory>

#include "network_helpers/tokenizer/hf_tokenizer.h"

namespace ptq {

std::shared_ptr<HfTokenizer> load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                                 const std::filesystem::path& vocab_bpe);

}  // namespace ptq
