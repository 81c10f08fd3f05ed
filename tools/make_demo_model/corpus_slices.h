// Deterministic, disjoint slices of the training corpus (../shared/data/corpus/train_*.txt, Project
// Gutenberg prose) for the demo model: a validation slice, a training slice, and the tokenizer's
// sample (the first bytes of the training slice). The corpus is cut into blocks of about
// `block_bytes` that end at a line break (never inside a UTF-8 character), the blocks are shuffled
// with `seed`, and the slices take whole blocks in that order, so every slice samples passages from
// across all 110 books. Nothing here writes corpus text anywhere: the text only lives in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ptq::demo {

struct CorpusSliceOptions {
  int64_t block_bytes = 32 * 1024;
  int64_t validation_bytes = 1 << 20;
  int64_t train_bytes = 12 << 20;
  int64_t tokenizer_bytes = 4 << 20;  // taken from the start of the training slice
  uint64_t seed = 1234;
};

struct CorpusSlices {
  std::string validation;
  std::string train;
  std::string tokenizer_sample;
  std::vector<std::string> files;  // the corpus files read, in order (for the model's README)
  int64_t corpus_bytes = 0;
  int64_t blocks_total = 0, validation_blocks = 0, train_blocks = 0;
};

// Reads `corpus_dir`/train_*.txt (sorted by name). Throws ptq::Error when the folder has no such
// file or the slices ask for more text than it holds.
CorpusSlices slice_corpus(const std::filesystem::path& corpus_dir,
                          const CorpusSliceOptions& options);

}  // namespace ptq::demo
