// AVX-512 attention over an int8 KV cache (kv_cache_cpu.h owns the storage and calls this). No LibTorch in
// this interface: the file is compiled with -mavx512* and must only be called after cpu::has_avx512().
//
// Storage of one (sequence, KV head), as CpuInt8KVCache keeps it:
//   keys    int8, blocks of kKVBlock = 16 positions, each block [D][16]: byte 16 d + i of block j is
//           channel d of position 16 j + i. One 16-byte load is one channel of 16 positions, so the
//           scores of 16 positions accumulate in the 16 lanes of one register (no horizontal sums).
//   values  int8 [S][D], row-major (the weighted sum runs along positions, 16 channels per register).
//   scales  static per-channel: float [D] for keys and for values; dynamic per-token: float [S] each.
//
// What is computed for each query row (q float [D], allowed bool bytes [S] or null = all allowed):
//   score[s] = scale * sum_d q[d] k'[s, d]        k' = code * k_scale, folded as (q[d] scale k_scale[d])
//                                                 (static) or sum_d (q[d] scale) code[s, d] * k_scale[s]
//   score[s] = lowest float where !allowed[s]     (what grouped_query_attention fills; a fully masked
//                                                 row therefore averages every position, as there)
//   p = exp(score - max score), out = sum_s p[s] v'[s] / sum_s p[s]   (v' = code * v_scale, folded the
//                                                 same way), all in float32.
// Positions after a row's last allowed one are skipped (their weight is exactly 0 in the reference
// too), so causal prefill reads only the past of each query.
#pragma once

#include <cstdint>

namespace ptq::cpu {

inline constexpr int64_t kKVBlock = 16;  // positions per key block
inline constexpr int kKVMaxRows = 8;     // query rows one call shares its key/value reads between

struct Int8KVView {
  int64_t head_dim = 0;                      // D (any size >= 1)
  int64_t length = 0;                        // S: positions stored
  const int8_t* keys = nullptr;              // [ceil(S / 16)][D][16]
  const int8_t* values = nullptr;            // [S][D]
  const float* key_token_scale = nullptr;    // dynamic: [S]; static: nullptr
  const float* value_token_scale = nullptr;  // dynamic: [S]; static: nullptr
  const float* key_channel_scale = nullptr;  // static: [D]; dynamic: nullptr
  const float* value_channel_scale = nullptr;
};

// Up to kKVMaxRows query rows that read the same KV head (GQA heads of one token, or consecutive tokens).
struct AttentionRows {
  int count = 0;
  const float* q[kKVMaxRows] = {};         // [D]
  const uint8_t* allowed[kKVMaxRows] = {};  // [S] bool bytes, or nullptr (every position allowed)
  float* out[kKVMaxRows] = {};             // [D]
};

// Floats of scratch space one call needs.
int64_t int8_kv_attention_workspace(int64_t head_dim, int64_t length);

// out[r] = softmax(scale q[r] K'^T, masked) V' for every row (formulas above). workspace: at least
// int8_kv_attention_workspace(D, S) floats, 64-byte aligned preferred.
void int8_kv_attention_avx512(const Int8KVView& kv, const AttentionRows& rows, float scale, float* workspace);

}  // namespace ptq::cpu
