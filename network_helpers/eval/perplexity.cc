#include "network_helpers/eval/perplexity.h"

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "framework/error.h"
#include "framework/torch_format.h"
#include "framework/progress.h"

namespace ptq {

PerplexityProtocol parse_perplexity_protocol(const std::string& name) {
  if (name == "windows") return PerplexityProtocol::kWindows;
  if (name == "gptq") return PerplexityProtocol::kGptq;
  fail("perplexity protocol \"{}\" is not known, expected \"windows\" or \"gptq\"", name);
}

std::string to_string(PerplexityProtocol protocol) {
  return protocol == PerplexityProtocol::kGptq ? "gptq" : "windows";
}

std::string read_evaluation_text(const std::filesystem::path& file, PerplexityProtocol protocol) {
  std::ifstream in(file, std::ios::binary);
  PTQ_CHECK(in.good(), "{}: cannot open the evaluation text", file.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  PTQ_CHECK(!text.empty(), "{}: the evaluation text is empty", file.string());
  if (protocol == PerplexityProtocol::kWindows) return text;
  // WikiText-2 rows are the file's lines with their "\n"; blank rows (" \n") were "" in the dataset.
  std::string joined;
  size_t start = 0;
  bool first = true;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    std::string row = text.substr(start, end - start);
    bool blank = row.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!first) joined += "\n\n";
    joined += blank ? "" : row;
    first = false;
    start = end;
  }
  return joined;
}

std::vector<int64_t> tokenize_for_perplexity(const Tokenizer& tokenizer, const std::string& text,
                                             PerplexityProtocol protocol) {
  return tokenizer.encode(text, /*add_special_tokens=*/protocol == PerplexityProtocol::kGptq);
}

PerplexityResult evaluate_perplexity(CausalLM& network, const std::vector<int64_t>& ids,
                                     const PerplexityOptions& options) {
  const int64_t W = options.window;
  PTQ_CHECK(W >= 2, "perplexity: window {} is too short, expected at least 2 tokens", W);
  PTQ_CHECK(W <= network.max_positions(), "perplexity: window {} is longer than the model's {} positions",
            W, network.max_positions());
  const int64_t available = static_cast<int64_t>(ids.size()) / W;
  PTQ_CHECK(available > 0, "perplexity: the text has {} tokens, fewer than one window of {}", ids.size(), W);
  const int64_t windows = options.max_windows > 0 ? std::min(available, options.max_windows) : available;
  const int64_t batch = std::max<int64_t>(1, options.batch);

  torch::NoGradGuard no_grad;
  auto all = torch::from_blob(const_cast<int64_t*>(ids.data()), {windows * W}, torch::kInt64).view({windows, W});
  Progress progress("perplexity", windows, "windows");
  auto start = std::chrono::steady_clock::now();
  double total_nll = 0;  // summed in double: 400k terms of float32 would lose ~1e-4 relative
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t n = std::min(batch, windows - first);
    auto input = all.narrow(0, first, n).clone();
    auto logits = network.forward(input);  // [n, W, V] float32
    auto log_probs = torch::log_softmax(logits.narrow(1, 0, W - 1), -1);
    auto targets = input.narrow(1, 1, W - 1).to(log_probs.device()).unsqueeze(-1);
    total_nll -= log_probs.gather(-1, targets).sum().to(torch::kFloat64).item<double>();
    if (options.show_progress) {
      double scored = static_cast<double>((first + n) * (W - 1));
      progress.advance(n, fmt::format("ppl {:.3f}", std::exp(total_nll / scored)));
    }
  }
  if (options.show_progress) progress.finish();
  PerplexityResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens = static_cast<int64_t>(ids.size());
  r.windows = windows;
  r.scored_tokens = windows * (W - 1);
  r.mean_nll = total_nll / static_cast<double>(r.scored_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.tokens_per_second = r.seconds > 0 ? windows * W / r.seconds : 0;
  return r;
}

}  // namespace ptq
