// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (backends/cpu/CMakeLists.txt); callers
// check cpu::has_avx512() first. Layout and formulas: kv_attention_avx512.h.
//
// Shape of the computation for R <= 8 query rows of one KV head (three passes, all in float32):
//   scores   per block of 16 positions: for each channel d, one 16-byte load of the block's codes,
//            sign-extend + convert (shared by the R rows), and one FMA per row with q[r][d] broadcast;
//            the 16 lanes are the 16 positions, so no horizontal reduction. Rows < 5 keep 2-4 partial
//            sums per row over alternating channels so the FMA chains overlap.
//   softmax  per row: max, exp (polynomial, vscalefps), sum; the dynamic value scale is folded into p.
//   values   per position: 16-channel chunks of its codes, converted once, FMA'd into <= 4 rows x 4 chunks
//            of accumulators (64 channels); the static value scale and 1 / sum are applied at the end.
#include "backends/cpu/kv_attention_avx512.h"
#include "backends/cpu/tiling.h"

#include <immintrin.h>

#include <algorithm>
#include <limits>

namespace ptq::cpu {
namespace {

constexpr float kLowest = std::numeric_limits<float>::lowest();  // the reference's masked-score fill

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

inline __m512 load_codes(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 load_codes(const int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

// exp(x), float32: Cephes expf (Cody-Waite reduction by ln 2, degree-5 polynomial), 2^n applied by
// vscalefps; about 1 ulp. Below ln(FLT_MIN) (and -inf) the result is 0 where expf would give a denormal
// (at most 1e-38 of a row sum whose largest term is 1).
inline __m512 exp_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.33654475f);
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.37626266f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~tiny), _mm512_scalef_ps(y, n));
}

// One past the last allowed position of a mask row; S when every position is allowed (null row) or none
// is (then every score is the lowest float and the row averages all positions, as the reference does).
int64_t row_end(const uint8_t* allowed, int64_t S) {
  if (allowed == nullptr) return S;
  int64_t e = S;
  for (; e >= 64; e -= 64) {
    const __m512i v = _mm512_loadu_si512(allowed + e - 64);
    const __mmask64 m = _mm512_test_epi8_mask(v, v);
    if (m) return e - __builtin_clzll(m);
  }
  for (; e > 0; --e)
    if (allowed[e - 1]) return e;
  return S;
}

// Scores of R rows for positions [0, n) (blocks of 16; lanes past n are masked), into scores[r * ld + s].
// qt: [R][D], q already multiplied by the softmax scale (and by the static key scale).
template <int R>
void scores_rows(const Int8KVView& kv, const float* qt, const uint8_t* const* allowed, int64_t n, float* scores,
                 int64_t ld) {
  constexpr int U = R >= 5 ? 1 : (R >= 3 ? 2 : 4);  // partial sums per row: >= 8 independent FMA chains
  const int64_t D = kv.head_dim, S = kv.length;
  const __m512 lowest = _mm512_set1_ps(kLowest);
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t s0 = 0; s0 < n; s0 += kKVBlock) {
    const int8_t* block = kv.keys + (s0 / kKVBlock) * D * kKVBlock;
    __m512 acc[U][R];
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[u][r] = _mm512_setzero_ps();
    int64_t d = 0;
    for (; d + U <= D; d += U) {
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        const __m512 k = load_codes(block + (d + u) * kKVBlock);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[u][r] = _mm512_fmadd_ps(_mm512_set1_ps(qt[r * D + d + u]), k, acc[u][r]);
      }
    }
    for (; d < D; ++d) {
      const __m512 k = load_codes(block + d * kKVBlock);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[0][r] = _mm512_fmadd_ps(_mm512_set1_ps(qt[r * D + d]), k, acc[0][r]);
    }
    const __mmask16 stored = first_lanes(S - s0);
    __m512 ks = _mm512_set1_ps(1.0f);
    if (kv.key_token_scale) ks = _mm512_maskz_loadu_ps(stored, kv.key_token_scale + s0);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 v = acc[0][r];
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) v = _mm512_add_ps(v, acc[u][r]);
      if (kv.key_token_scale) v = _mm512_mul_ps(v, ks);
      __mmask16 ok = stored;
      if (allowed[r]) {
        const __m128i a = _mm_maskz_loadu_epi8(stored, allowed[r] + s0);
        ok = _mm_test_epi8_mask(a, a);
      }
      v = _mm512_mask_blend_ps(ok, lowest, v);       // disallowed: the reference's fill
      v = _mm512_mask_blend_ps(stored, neg_inf, v);  // past the cache: weight 0 even in a fully masked row
      _mm512_storeu_ps(scores + r * ld + s0, v);
    }
  }
}

// Softmax numerators in place over round_up(n, 16) lanes; returns 1 / sum. Folds the dynamic value
// scale into p (p[s] * v_scale[s]) after the sum.
float softmax_row(const Int8KVView& kv, float* sc, int64_t n) {
  const int64_t n16 = round_up(n, kKVBlock);
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t s = 0; s < n16; s += kKVBlock) mx = _mm512_max_ps(mx, _mm512_loadu_ps(sc + s));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t s = 0; s < n16; s += kKVBlock) {
    __m512 p = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(sc + s), m));
    sum = _mm512_add_ps(sum, p);
    if (kv.value_token_scale) p = _mm512_mul_ps(p, _mm512_maskz_loadu_ps(first_lanes(kv.length - s), kv.value_token_scale + s));
    _mm512_storeu_ps(sc + s, p);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

struct ValueArgs {
  const Int8KVView* kv;
  int64_t n;          // positions [0, n)
  const float* p;     // [rows][ld]
  int64_t ld;
  int64_t d0;         // first channel of this chunk group
  __mmask16 tail;     // lanes of the last 16-channel chunk
  float* const* out;  // rows' outputs
  const float* inv;   // rows' 1 / sum
};

// RR <= 4 rows x C <= 4 chunks of 16 channels starting at d0.
template <int RR, int C>
void weighted_sum(const ValueArgs& a) {
  const int64_t D = a.kv->head_dim;
  __m512 acc[RR][C];
#pragma GCC unroll 4
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  const int8_t* v = a.kv->values + a.d0;
  for (int64_t s = 0; s < a.n; ++s, v += D) {
    __m512 x[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) x[c] = c == C - 1 ? load_codes(v + 16 * c, a.tail) : load_codes(v + 16 * c);
#pragma GCC unroll 4
    for (int r = 0; r < RR; ++r) {
      const __m512 pr = _mm512_set1_ps(a.p[r * a.ld + s]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(pr, x[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    const __mmask16 m = c == C - 1 ? a.tail : static_cast<__mmask16>(0xFFFF);
    const int64_t d = a.d0 + 16 * c;
    __m512 vs = _mm512_set1_ps(1.0f);
    if (a.kv->value_channel_scale) vs = _mm512_maskz_loadu_ps(m, a.kv->value_channel_scale + d);
#pragma GCC unroll 4
    for (int r = 0; r < RR; ++r) {
      const __m512 y = _mm512_mul_ps(_mm512_mul_ps(acc[r][c], vs), _mm512_set1_ps(a.inv[r]));
      _mm512_mask_storeu_ps(a.out[r] + d, m, y);
    }
  }
}

using WeightedSumFn = void (*)(const ValueArgs&);
constexpr WeightedSumFn kWeightedSum[4][4] = {
    {weighted_sum<1, 1>, weighted_sum<1, 2>, weighted_sum<1, 3>, weighted_sum<1, 4>},
    {weighted_sum<2, 1>, weighted_sum<2, 2>, weighted_sum<2, 3>, weighted_sum<2, 4>},
    {weighted_sum<3, 1>, weighted_sum<3, 2>, weighted_sum<3, 3>, weighted_sum<3, 4>},
    {weighted_sum<4, 1>, weighted_sum<4, 2>, weighted_sum<4, 3>, weighted_sum<4, 4>},
};

}  // namespace

int64_t int8_kv_attention_workspace(int64_t head_dim, int64_t length) {
  return kKVMaxRows * (round_up(length, kKVBlock) + head_dim + 16);
}

void int8_kv_attention_avx512(const Int8KVView& kv, const AttentionRows& rows, float scale, float* workspace) {
  const int R = rows.count;
  const int64_t D = kv.head_dim, S = kv.length;
  if (R <= 0) return;
  if (S == 0) {
    for (int r = 0; r < R; ++r) std::fill(rows.out[r], rows.out[r] + D, 0.0f);
    return;
  }
  const int64_t ld = round_up(S, kKVBlock);
  float* scores = workspace;            // [R][ld]
  float* qt = scores + kKVMaxRows * ld;  // [R][D]
  float inv[kKVMaxRows];

  int64_t n = 0;
  for (int r = 0; r < R; ++r) {
    const bool same_mask = r > 0 && rows.allowed[r] == rows.allowed[r - 1];  // GQA heads of one token
    if (!same_mask) n = std::max(n, row_end(rows.allowed[r], S));
    for (int64_t d = 0; d < D; ++d)
      qt[r * D + d] = rows.q[r][d] * scale * (kv.key_channel_scale ? kv.key_channel_scale[d] : 1.0f);
  }
  switch (R) {
    case 1: scores_rows<1>(kv, qt, rows.allowed, n, scores, ld); break;
    case 2: scores_rows<2>(kv, qt, rows.allowed, n, scores, ld); break;
    case 3: scores_rows<3>(kv, qt, rows.allowed, n, scores, ld); break;
    case 4: scores_rows<4>(kv, qt, rows.allowed, n, scores, ld); break;
    case 5: scores_rows<5>(kv, qt, rows.allowed, n, scores, ld); break;
    case 6: scores_rows<6>(kv, qt, rows.allowed, n, scores, ld); break;
    case 7: scores_rows<7>(kv, qt, rows.allowed, n, scores, ld); break;
    default: scores_rows<8>(kv, qt, rows.allowed, n, scores, ld); break;
  }
  for (int r = 0; r < R; ++r) inv[r] = softmax_row(kv, scores + r * ld, n);
  for (int64_t d0 = 0; d0 < D; d0 += 64) {
    const int64_t width = std::min<int64_t>(64, D - d0);
    const int chunks = static_cast<int>((width + 15) / 16);
    const __mmask16 tail = first_lanes(width - 16 * (chunks - 1));
    for (int r0 = 0; r0 < R; r0 += 4) {
      const int rr = std::min(4, R - r0);
      const ValueArgs a{&kv, n, scores + r0 * ld, ld, d0, tail, rows.out + r0, inv + r0};
      kWeightedSum[rr - 1][chunks - 1](a);
    }
  }
}

}  // namespace ptq::cpu
