// Perplexity of a text under a CausalLM, by one of two published protocols:
//  - "windows" (the protocol of the shared models' reference.json): the whole file tokenized without
//    special tokens, non-overlapping windows of W ids from the start, the last partial window dropped, no
//    BOS, each window scoring its W-1 next-token predictions; ppl = exp(total NLL / scored tokens).
//  - "gptq" (GPTQ / AWQ / SmoothQuant papers on WikiText-2): the dataset rows joined with "\n\n",
//    tokenized once with special tokens (a single BOS at the start), windows of 2048 by default, scored
//    the same way.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/causal_lm.h"
#include "framework/tokenizer.h"

namespace ptq {

enum class PerplexityProtocol { kWindows, kGptq };

PerplexityProtocol parse_perplexity_protocol(const std::string& name);  // "windows" | "gptq"
std::string to_string(PerplexityProtocol protocol);

struct PerplexityOptions {
  PerplexityProtocol protocol = PerplexityProtocol::kWindows;
  int64_t window = 512;
  int64_t batch = 1;        // windows per forward pass
  int64_t max_windows = 0;  // 0: all
  bool show_progress = true;
};

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;
  int64_t tokens = 0;         // ids in the whole text
  int64_t scored_tokens = 0;  // predictions scored
  int64_t windows = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // forward tokens per second
};

// The text as the protocol reads it (gptq joins the file's lines back into dataset rows with "\n\n").
std::string read_evaluation_text(const std::filesystem::path& file, PerplexityProtocol protocol);

// The ids the protocol scores.
std::vector<int64_t> tokenize_for_perplexity(const Tokenizer& tokenizer, const std::string& text,
                                             PerplexityProtocol protocol);

// Scores `ids` (errors: too few ids for one window, window longer than the model's positions, window < 2).
PerplexityResult evaluate_perplexity(CausalLM& network, const std::vector<int64_t>& ids,
                                     const PerplexityOptions& options);

}  // namespace ptq
