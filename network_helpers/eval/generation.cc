#include "network_helpers/eval/generation.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq {

std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& batch, int64_t pad_id) {
  PTQ_CHECK(!batch.empty(), "assemble_inputs: empty batch");
  size_t longest = 0;
  for (const auto& seq : batch) longest = std::max(longest, seq.size());
  PTQ_CHECK(longest > 0, "assemble_inputs: every sequence is empty");
  const int64_t B = static_cast<int64_t>(batch.size()), T = static_cast<int64_t>(longest);
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& seq = batch[b];
    const int64_t offset = T - static_cast<int64_t>(seq.size());
    for (size_t t = 0; t < seq.size(); ++t) {
      ids_a[b][offset + t] = seq[t];
      mask_a[b][offset + t] = 1;
    }
  }
  return {ids, mask};
}

int64_t pick_token(const torch::Tensor& logits, const GenerationOptions& options, std::mt19937_64& rng) {
  if (options.greedy || options.temperature <= 0.0) return logits.argmax().item<int64_t>();
  auto scaled = (logits.to(torch::kFloat64) / options.temperature).contiguous();
  const int64_t V = scaled.size(0);
  std::vector<double> values(scaled.data_ptr<double>(), scaled.data_ptr<double>() + V);
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  // Stable sort keeps ties in id order, so a seed gives the same tokens on every machine.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  int64_t keep = V;
  if (options.top_k > 0) keep = std::min<int64_t>(keep, options.top_k);
  const double top = values[order[0]];
  std::vector<double> probs(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[i] = std::exp(values[order[i]] - top);
  if (options.top_p < 1.0) {
    // Nucleus: the smallest prefix of the sorted distribution whose mass reaches top_p.
    double mass = 0;
    int64_t cut = keep;
    for (int64_t i = 0; i < keep; ++i) {
      mass += probs[i] / total;
      if (mass >= options.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    probs.resize(keep);
  }
  std::discrete_distribution<int64_t> pick(probs.begin(), probs.end());
  return order[pick(rng)];
}

std::vector<std::vector<int64_t>> generate_tokens(CausalLM& network, const std::vector<std::vector<int64_t>>& prompts,
                                                  const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                  const GenerationOptions& options, std::optional<int64_t> eos_id) {
  torch::NoGradGuard no_grad;
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  PTQ_CHECK(T + options.max_new_tokens <= network.max_positions(),
            "generate: prompt of {} tokens + {} new tokens exceeds the model's {} positions", T,
            options.max_new_tokens, network.max_positions());
  std::vector<std::vector<int64_t>> out = prompts;
  std::vector<bool> done(B, false);
  std::mt19937_64 rng(options.seed);
  auto state = network.new_state(B, T + options.max_new_tokens);
  auto last = network.forward_last(input_ids, state.get(), attention_mask).select(1, 0);  // [B, V]
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto next = torch::empty({B, 1}, torch::kInt64);
    auto last_cpu = last.to(torch::kCPU);
    for (int64_t b = 0; b < B; ++b) {
      int64_t token = done[b] ? out[b].back() : pick_token(last_cpu[b], options, rng);
      next[b][0] = token;
      if (done[b]) continue;
      out[b].push_back(token);
      if (options.on_token) options.on_token(b, token);
      if (options.stop_at_eos && eos_id && token == *eos_id) done[b] = true;
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; }) || step + 1 == options.max_new_tokens) break;
    last = network.forward_last(next, state.get()).select(1, 0);
  }
  return out;
}

TextStreamer::TextStreamer(const Tokenizer& tokenizer, std::vector<int64_t> prompt_ids)
    : tokenizer_(tokenizer), ids_(std::move(prompt_ids)) {
  // Decoding the whole sequence and skipping the prompt's text keeps decoders that strip a leading space
  // (Metaspace, sentencepiece) from eating the space before the first generated word.
  emitted_ = tokenizer_.decode(ids_, /*skip_special_tokens=*/true).size();
}

namespace {
// Length of the longest prefix of s that does not end inside a UTF-8 sequence or on U+FFFD (the
// replacement a decoder emits for an incomplete byte sequence that may still be completed).
size_t complete_prefix(const std::string& s) {
  const std::string replacement = "\xEF\xBF\xBD";
  if (s.size() >= 3 && s.compare(s.size() - 3, 3, replacement) == 0) return s.size() - 3;
  size_t i = s.size();
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return s.size();
  unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need > back ? i - 1 : s.size();
}
}  // namespace

std::string TextStreamer::push(int64_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_, /*skip_special_tokens=*/true);
  size_t ready = complete_prefix(text);
  if (ready <= emitted_) return "";
  std::string piece = text.substr(emitted_, ready - emitted_);
  emitted_ = ready;
  return piece;
}

std::string TextStreamer::flush() {
  std::string text = tokenizer_.decode(ids_, /*skip_special_tokens=*/true);
  std::string piece = text.size() > emitted_ ? text.substr(emitted_) : "";
  emitted_ = text.size();
  return piece;
}

}  // namespace ptq
