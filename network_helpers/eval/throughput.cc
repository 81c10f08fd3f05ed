#include "network_helpers/eval/throughput.h"

#include <torch/torch.h>

#include <chrono>
#include <string>

#include "framework/error.h"

namespace ptq {

ThroughputResult measure_throughput(CausalLM& network, const ThroughputOptions& o) {
  PTQ_CHECK(o.prompt_tokens >= 1 && o.decode_tokens >= 0, "bench: prompt tokens must be >= 1");
  PTQ_CHECK(o.prompt_tokens + o.decode_tokens <= network.max_positions(),
            "bench: {} prompt + {} decode tokens exceed the model's {} positions", o.prompt_tokens, o.decode_tokens,
            network.max_positions());
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(o.seed);
  auto prompt = torch::randint(0, network.vocab_size(), {o.batch, o.prompt_tokens}, gen, torch::kInt64);
  ThroughputResult best;
  using clock = std::chrono::steady_clock;
  for (int64_t run = 0; run <= o.repeats; ++run) {  // run 0 warms up caches and allocators
    auto state = network.new_state(o.batch, o.prompt_tokens + o.decode_tokens);
    auto t0 = clock::now();
    auto next = network.forward_last(prompt, state.get()).select(1, 0).argmax(-1).unsqueeze(1).to(torch::kCPU);
    double prefill = std::chrono::duration<double>(clock::now() - t0).count();
    auto t1 = clock::now();
    for (int64_t step = 0; step < o.decode_tokens; ++step)
      next = network.forward_last(next, state.get()).select(1, 0).argmax(-1).unsqueeze(1).to(torch::kCPU);
    double decode = std::chrono::duration<double>(clock::now() - t1).count();
    if (run == 0) continue;
    if (best.prefill_seconds == 0 || prefill < best.prefill_seconds) best.prefill_seconds = prefill;
    if (o.decode_tokens > 0 && (best.decode_seconds == 0 || decode < best.decode_seconds)) best.decode_seconds = decode;
    best.kv_cache_bytes = state->memory_bytes();
  }
  best.prefill_tokens_per_second = o.batch * o.prompt_tokens / best.prefill_seconds;
  if (best.decode_seconds > 0) best.decode_tokens_per_second = o.batch * o.decode_tokens / best.decode_seconds;
  best.peak_rss_bytes = peak_rss_bytes();
  return best;
}

}  // namespace ptq
