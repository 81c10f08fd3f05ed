// Prefill and decode speed of a CausalLM, and the process's peak memory: the numbers `ptq bench` and the
// report programs print. Inputs are random token ids (speed does not depend on the text).
#pragma once

#include <cstdint>

#include "framework/causal_lm.h"
#include "framework/process_memory.h"  // peak_rss_bytes(), reset_peak_rss()

namespace ptq {

struct ThroughputOptions {
  int64_t batch = 1;
  int64_t prompt_tokens = 512;
  int64_t decode_tokens = 64;
  int64_t repeats = 3;  // the best of `repeats` runs is reported (after one warm-up)
  uint64_t seed = 0;
};

struct ThroughputResult {
  double prefill_seconds = 0;         // best run
  double prefill_tokens_per_second = 0;
  double decode_seconds = 0;          // best run, all decode steps
  double decode_tokens_per_second = 0;  // per sequence x batch
  int64_t kv_cache_bytes = 0;         // after prompt + decode
  int64_t peak_rss_bytes = 0;         // process high-water mark (VmHWM)
};

ThroughputResult measure_throughput(CausalLM& network, const ThroughputOptions& options);

}  // namespace ptq
