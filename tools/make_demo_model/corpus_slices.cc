#include "tools/make_demo_model/corpus_slices.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "framework/error.h"

namespace ptq::demo {
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the corpus file", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Spans [begin, end) of about `target` bytes, each ending just after a '\n' (or at the end of the
// text).
void cut_blocks(const std::string& text, int64_t target, std::vector<std::string>& blocks) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = std::min(text.size(), begin + size_t(target));
    if (end < text.size()) {
      size_t newline = text.find('\n', end);
      end = newline == std::string::npos ? text.size() : newline + 1;
    }
    blocks.push_back(text.substr(begin, end - begin));
    begin = end;
  }
}

}  // namespace

CorpusSlices slice_corpus(const fs::path& corpus_dir, const CorpusSliceOptions& options) {
  PTQ_CHECK(fs::is_directory(corpus_dir),
            "{}: not a folder (expected ../shared/data/corpus with train_*.txt)",
            corpus_dir.string());
  CorpusSlices slices;
  for (auto& entry : fs::directory_iterator(corpus_dir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("train_", 0) == 0 && entry.path().extension() == ".txt")
      slices.files.push_back(name);
  }
  std::sort(slices.files.begin(), slices.files.end());
  PTQ_CHECK(!slices.files.empty(), "{}: no train_*.txt corpus files", corpus_dir.string());

  std::vector<std::string> blocks;
  for (auto& name : slices.files) {
    std::string text = read_file(corpus_dir / name);
    slices.corpus_bytes += int64_t(text.size());
    cut_blocks(text, options.block_bytes, blocks);
  }
  slices.blocks_total = int64_t(blocks.size());

  // Fisher-Yates with mt19937_64 and a plain modulo: unlike std::shuffle and the std distributions,
  // this gives the same order with every standard library.
  std::mt19937_64 rng(options.seed);
  std::vector<size_t> order(blocks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);

  size_t next = 0;
  auto take = [&](int64_t bytes, std::string& out, int64_t& count, const char* what) {
    while (int64_t(out.size()) < bytes) {
      PTQ_CHECK(next < order.size(),
                "{}: the corpus ({} bytes) is too small for a {} slice of {} bytes",
                corpus_dir.string(), slices.corpus_bytes, what, bytes);
      out += blocks[order[next++]];
      ++count;
    }
  };
  take(options.validation_bytes, slices.validation, slices.validation_blocks, "validation");
  take(options.train_bytes, slices.train, slices.train_blocks, "training");
  PTQ_CHECK(options.tokenizer_bytes <= int64_t(slices.train.size()),
            "tokenizer sample of {} bytes is larger than the training slice ({} bytes)",
            options.tokenizer_bytes, slices.train.size());
  // Cut at a line break so that the sample stays valid UTF-8.
  size_t cut = slices.train.find('\n', size_t(options.tokenizer_bytes));
  slices.tokenizer_sample =
      slices.train.substr(0, cut == std::string::npos ? std::string::npos : cut + 1);
  return slices;
}

}  // namespace ptq::demo
