// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (backends/cpu/CMakeLists.txt); callers
// check cpu::has_avx512() first. The layout is documented in weight_only_avx512.h.
//
// Shape of the computation: a tile of NR = 4 weight rows x MB <= 4 input rows keeps NR * MB accumulators
// of 16 lanes in registers; each 16-column chunk of a weight row is dequantized once and multiplied into
// MB inputs. At M = 1 the loop is bound by memory bandwidth, so the decode must cost few instructions:
//   int4: one 64-byte load per 128 columns, then per chunk a shift and a vpermps that looks the nibble up
//         in a 16-entry table of the group's dequantized values (float(u - zero) * scale, built once per
//         group), i.e. the dequantization is a table lookup and the kernel needs no int->float conversion.
//   int8: sign-extend 16 bytes, subtract the zero point, convert, multiply by the scale.
#include "backends/cpu/weight_only_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

namespace ptq::cpu {
namespace {

constexpr int kNR = 4;             // weight rows per tile
constexpr int kMB = 4;             // input rows per tile
constexpr int64_t kSuper = 128;    // columns per superblock (eight 16-column chunks)
constexpr int kChunks = 8;

template <typename F, int... J>
inline void unroll_impl(F&& f, std::integer_sequence<int, J...>) {
  (f(std::integral_constant<int, J>{}), ...);
}
// f(std::integral_constant<int, 0>{}) ... f(std::integral_constant<int, N - 1>{}): compile-time chunk
// indices, so shift counts and load offsets are immediates.
template <int N, typename F>
inline void unroll(F&& f) {
  unroll_impl(std::forward<F>(f), std::make_integer_sequence<int, N>{});
}

template <int Bits>
struct Decoder;

template <>
struct Decoder<4> {
  static constexpr int64_t kBytesPerSuper = kSuper / 2;
  __m512 table = _mm512_setzero_ps();  // table[u] = float(u - zero) * scale for the current group
  __m512i words = _mm512_setzero_si512();

  void set_group(float scale, int32_t zero) {
    const __m512i u = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    table = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u, _mm512_set1_epi32(zero))), _mm512_set1_ps(scale));
  }
  void load(const uint8_t* p) { words = _mm512_loadu_si512(p); }
  // vpermps reads only the low 4 bits of each index lane: no mask needed after the shift.
  template <int J>
  __m512 chunk() const {
    if constexpr (J == 0) {
      return _mm512_permutexvar_ps(words, table);
    } else {
      return _mm512_permutexvar_ps(_mm512_srli_epi32(words, 4 * J), table);
    }
  }
};

template <>
struct Decoder<8> {
  static constexpr int64_t kBytesPerSuper = kSuper;
  __m512 scale = _mm512_setzero_ps();
  __m512i zero = _mm512_setzero_si512();
  const uint8_t* p = nullptr;

  void set_group(float s, int32_t z) {
    scale = _mm512_set1_ps(s);
    zero = _mm512_set1_epi32(z);
  }
  void load(const uint8_t* q) { p = q; }
  template <int J>
  __m512 chunk() const {
    const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * J)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, zero)), scale);
  }
};

// Prefetches need no bounds: past the end of the buffer they are dropped, never fault.
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

template <int Bits>
int64_t row_bytes(const PackedWeightView& w) {
  return w.Kp / kSuper * Decoder<Bits>::kBytesPerSuper;
}

// y[mb, n + r] for r < NR, mb < MB. x and y point at the tile's first input/output row.
template <int Bits, int NR, int MB>
void tile(const PackedWeightView& w, const float* x, float* y, int64_t ldy, int64_t n) {
  const int64_t rb = row_bytes<Bits>(w);
  Decoder<Bits> d[NR];
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r) {
    for (int mb = 0; mb < MB; ++mb) acc[r][mb] = _mm512_setzero_ps();
  }
  // The next tile's weights are fetched while this one is computed. A tile reads NR short streams (one row
  // each, K / 2 bytes for int4: 1 KB at K = 2048), too short for the hardware prefetchers to ramp up: at
  // M = 1 the loop stalled on these loads (perf: ~65% of the samples on the code loads).
  // The NR rows of a tile are adjacent in memory, so each step prefetches the next tile's bytes in order.
  constexpr int64_t kStepBytes = NR * Decoder<Bits>::kBytesPerSuper;
  const uint8_t* next_tile = w.codes + (n + NR) * rb;
  for (int r = 0; r < NR; ++r) {
    prefetch_bytes(w.scale + (n + NR + r) * w.Gp, w.Gp * sizeof(float));
    prefetch_bytes(w.zero + (n + NR + r) * w.Gp, w.Gp * sizeof(int32_t));
  }
  int64_t next_group = 0, g = 0;
  for (int64_t k = 0; k < w.Kp; k += kSuper) {
    const uint8_t* block = w.codes + k / kSuper * Decoder<Bits>::kBytesPerSuper;
    prefetch_bytes(next_tile + k / kSuper * kStepBytes, kStepBytes);
    for (int r = 0; r < NR; ++r) d[r].load(block + (n + r) * rb);
    unroll<kChunks>([&](auto j) {
      constexpr int J = decltype(j)::value;
      const int64_t k0 = k + 16 * J;
      // Groups are multiples of 16 columns, so a group starts only at a chunk boundary.
      if (k0 == next_group) {
        for (int r = 0; r < NR; ++r) d[r].set_group(w.scale[(n + r) * w.Gp + g], w.zero[(n + r) * w.Gp + g]);
        ++g;
        next_group += w.group;
      }
      __m512 xv[MB];
      for (int mb = 0; mb < MB; ++mb) xv[mb] = _mm512_loadu_ps(x + mb * w.Kp + k0);
      for (int r = 0; r < NR; ++r) {
        const __m512 wv = d[r].template chunk<J>();
        for (int mb = 0; mb < MB; ++mb) acc[r][mb] = _mm512_fmadd_ps(wv, xv[mb], acc[r][mb]);
      }
    });
  }
  for (int r = 0; r < NR; ++r) {
    for (int mb = 0; mb < MB; ++mb) y[mb * ldy + n + r] = _mm512_reduce_add_ps(acc[r][mb]);
  }
}

using TileFn = void (*)(const PackedWeightView&, const float*, float*, int64_t, int64_t);

template <int Bits, int NR, int... MB>
constexpr std::array<TileFn, kMB> tiles_for_rows(std::integer_sequence<int, MB...>) {
  return {&tile<Bits, NR, MB + 1>...};
}
template <int Bits, int... NR>
constexpr std::array<std::array<TileFn, kMB>, kNR> tile_table(std::integer_sequence<int, NR...>) {
  return {tiles_for_rows<Bits, NR + 1>(std::make_integer_sequence<int, kMB>{})...};
}
// kTiles<Bits>[nr - 1][mb - 1] = tile<Bits, nr, mb>.
template <int Bits>
constexpr auto kTiles = tile_table<Bits>(std::make_integer_sequence<int, kNR>{});

template <int Bits>
void gemm(const PackedWeightView& w, const float* x, int64_t M, float* y, int64_t ldy, int64_t n0, int64_t n1) {
  // Blocks of kMC input rows (K = 4096: 512 KB of x, L2-resident) are swept over all weight rows, so x is
  // read from L2 rather than memory once per weight tile; the weight is streamed once per block.
  constexpr int64_t kMC = 32;
  for (int64_t mc = 0; mc < M; mc += kMC) {
    const int64_t mc_end = std::min(M, mc + kMC);
    for (int64_t n = n0; n < n1; n += kNR) {
      const int nr = static_cast<int>(std::min<int64_t>(kNR, n1 - n));
      // The block's input rows against this tile's weight rows while they are in L1.
      for (int64_t m = mc; m < mc_end; m += kMB) {
        const int mb = static_cast<int>(std::min<int64_t>(kMB, mc_end - m));
        kTiles<Bits>[nr - 1][mb - 1](w, x + m * w.Kp, y + m * ldy, ldy, n);
      }
    }
  }
}

template <int Bits>
void dequantize(const PackedWeightView& w, float* out, int64_t ldo, int64_t n0, int64_t n1) {
  const int64_t rb = row_bytes<Bits>(w);
  for (int64_t n = n0; n < n1; ++n) {
    Decoder<Bits> d;
    int64_t next_group = 0, g = 0;
    float* row = out + n * ldo;
    for (int64_t k = 0; k < w.Kp; k += kSuper) {
      d.load(w.codes + n * rb + k / kSuper * Decoder<Bits>::kBytesPerSuper);
      unroll<kChunks>([&](auto j) {
        constexpr int J = decltype(j)::value;
        const int64_t k0 = k + 16 * J;
        if (k0 == next_group) {
          d.set_group(w.scale[n * w.Gp + g], w.zero[n * w.Gp + g]);
          ++g;
          next_group += w.group;
        }
        _mm512_storeu_ps(row + k0, d.template chunk<J>());
      });
    }
  }
}

}  // namespace

void weight_only_gemm_avx512(const PackedWeightView& w, const float* x, int64_t M, float* y, int64_t ldy,
                             int64_t n0, int64_t n1) {
  if (w.bits == 4) {
    gemm<4>(w, x, M, y, ldy, n0, n1);
  } else {
    gemm<8>(w, x, M, y, ldy, n0, n1);
  }
}

void weight_only_dequantize_avx512(const PackedWeightView& w, float* out, int64_t ldo, int64_t n0, int64_t n1) {
  if (w.bits == 4) {
    dequantize<4>(w, out, ldo, n0, n1);
  } else {
    dequantize<8>(w, out, ldo, n0, n1);
  }
}

}  // namespace ptq::cpu
