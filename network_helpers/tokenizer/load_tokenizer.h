// ptq::load_tokenizer: finds and loads the tokenizer of a model folder or a tokenizer file.
#pragma once

#include <filesystem>
#include <memory>

#include "framework/tokenizer.h"

namespace ptq {

// `path` is either
//   - a folder: the first of tokenizer.json (with tokenizer_config.json when present),
//   tokenizer.model,
//     encoder.json + vocab.bpe, tokenizer.bin / tok*.bin (llama2.c) found in it; or
//   - a file: *.json (tokenizer.json; encoder.json pairs with the vocab.bpe beside it), vocab.bpe,
//     *.model (SentencePiece), *.bin (llama2.c).
// Throws ptq::Error naming the folder and the files looked for when there is no tokenizer, and
// naming the file and key when a file is malformed.
std::shared_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace ptq
