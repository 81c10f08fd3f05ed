// Decode-attention cases shared by bench_kv_attention.cc (Google Benchmark) and kv_attention_report.cc:
// one query token of H heads over a cache of S positions with Hkv KV heads of head_dim D, batch 1, as
// the Llama attention calls KVCache::attend (q [1, H, 1, D] fp32, allowed bool [1, 1, S] all true).
// Caches: "float" = FloatKVCache fp32 (LibTorch matmul/softmax/matmul, what the framework runs for a
// float model), "int8-*-ref" = the reference Int8KVCache (dequantize + the same LibTorch attention),
// "int8-*-cpu" = the CPU backend's AVX-512 kernel over the int8 codes.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "framework/attention.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "framework/kv_cache.h"
#include "framework/kv_quant.h"

namespace ptq::bench {

struct KVAttentionShape {
  int64_t H, Hkv, D, S;
};

inline std::vector<KVAttentionShape> kv_attention_shapes() {
  std::vector<KVAttentionShape> shapes;
  for (int64_t D : {64, 128})
    for (int64_t Hkv : {32, 8, 4})
      for (int64_t S : {512, 2048, 4096}) shapes.push_back({32, Hkv, D, S});
  return shapes;
}

inline const std::vector<std::string>& kv_cache_kinds() {
  static const std::vector<std::string> kinds = {"float", "int8-dyn-ref", "int8-dyn-cpu", "int8-static-cpu"};
  return kinds;
}

// A cache of `kind` holding S random positions (keys with channels of different magnitude).
inline std::unique_ptr<KVCache> make_filled_kv_cache(const std::string& kind, const KVAttentionShape& s) {
  register_builtin_backends();
  torch::NoGradGuard no_grad;
  auto k = torch::randn({1, s.Hkv, s.S, s.D}) * torch::exp(torch::randn({1, s.Hkv, 1, s.D}) * 0.5);
  auto v = torch::randn({1, s.Hkv, s.S, s.D});
  const KVCacheShape shape{1, s.Hkv, s.D, s.S, torch::kFloat32, torch::kCPU};
  std::shared_ptr<KVCacheFormat> format;
  if (kind == "float") {
    format = std::make_shared<FloatKVCacheFormat>();
  } else {
    const bool dynamic = kind.find("dyn") != std::string::npos;
    const KVQuantParams params = dynamic ? KVQuantParams::dynamic_per_token()
                                         : KVQuantParams::static_per_channel(kv_scale_from_absmax(k.abs().amax({0, 2})),
                                                                             kv_scale_from_absmax(v.abs().amax({0, 2})));
    if (kind.size() > 4 && kind.substr(kind.size() - 4) == "-ref") {
      format = std::make_shared<Int8KVCacheFormat>(params);
    } else {
      auto cpu = find_backend("cpu");
      PTQ_CHECK(cpu, "the cpu backend is not built (oneDNN missing?): nothing to benchmark");
      const Support ok = cpu->supports_kv(params);
      PTQ_CHECK(ok.ok, "the cpu backend declines the int8 KV cache: {}", ok.reason);
      format = cpu->make_kv_cache_format(params);
    }
  }
  auto cache = format->create(shape);
  cache->append(k, v);
  return cache;
}

}  // namespace ptq::bench
