// Kernels on packed weights (packed.h), AVX-512 with VNNI. A tile is one group of 16 rows times
// up to 8 tokens: each 64-byte weight register (16 rows x 4 values) is unpacked once and fed to
// every token's accumulator by vpdpbusd with the token's 4 activation bytes broadcast, so the
// accumulator lanes are the 16 rows' outputs and the per-row scales multiply lane by lane.
// Integer sums per (sub-)block are exact, as in the file-layout kernels and in llama.cpp.
#include <cstdint>
#include <cstring>

#include "kernels/packed.h"
#include "kernels/packed_blocks.h"
#include "kernels/quant_blocks.h"
#include "util/error.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/avx512_vnni_begin.inc"

namespace kexa::kernels {

using namespace quant;

namespace {

using namespace packed;

constexpr int kTileTokens = 8;

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m512 halves(const uint16_t* h) { return _mm512_cvtph_ps(load256(h)); }

// Four activation bytes as one int32 in every lane (vpdpbusd's embedded broadcast).
inline __m512i word(const int8_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return _mm512_set1_epi32(v);
}

// Independent integer accumulation chains per token: with few tokens one chain of vpdpbusd would
// wait on its own latency. Integer sums are exact in any order, so a token's result does not
// depend on the chain count (or on T).
template <int T>
constexpr int kChains = T == 1 ? 4 : T == 2 ? 2 : 1;

template <int T, int C>
inline void zero(__m512i (&acc)[C][T]) {
  for (int c = 0; c < C; ++c)
    for (int t = 0; t < T; ++t) acc[c][t] = _mm512_setzero_si512();
}

template <int T, int C>
inline __m512i chain_sum(const __m512i (&acc)[C][T], int t) {
  __m512i s = acc[0][t];
  for (int c = 1; c < C; ++c) s = _mm512_add_epi32(s, acc[c][t]);
  return s;
}

template <int T>
void q8_0_tile(const PackedQ8_0* blk, int64_t nb, const ActBlock32* const* a, float* y, int64_t y_stride) {
  __m512 accf[T];
  for (int t = 0; t < T; ++t) accf[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ8_0& p = blk[i];
    prefetch_block_ahead(&p, sizeof(p));
    constexpr int C = kChains<T>;
    __m512i acc[C][T];
    zero(acc);
    for (int s = 0; s < 8; ++s) {
      const __m512i w = load512(p.q[s]);
      for (int t = 0; t < T; ++t) acc[s % C][t] = _mm512_dpbusd_epi32(acc[s % C][t], w, word(a[t][i].qs + 4 * s));
    }
    const __m512 d = halves(p.d);
    for (int t = 0; t < T; ++t) {
      // Levels are stored +128: sum((q + 128) x) - 128 sum(x).
      const __m512i v = _mm512_sub_epi32(chain_sum(acc, t), _mm512_set1_epi32(128 * a[t][i].sum));
      accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(d, _mm512_set1_ps(a[t][i].d)), accf[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride, accf[t]);
}

// Q4_K, and Q5_K (kFive) whose fifth bits are merged into the unpacked nibbles.
template <int T, bool kFive, class Packed>
void q45_k_tile(const Packed* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  __m512 accf[T];
  for (int t = 0; t < T; ++t) accf[t] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  for (int64_t i = 0; i < nb; ++i) {
    const Packed& p = blk[i];
    prefetch_block_ahead(&p, sizeof(p));
    auto sbyte = [&](int k) { return _mm512_cvtepu8_epi32(load128(p.scales[k])); };
    // Minimums: dmin * sum_j m_j * (sum of sub-block j's activations), with the 8 six-bit m_j of
    // the 16 rows as int16 pairs (m_2q, m_2q+1) per lane for vpdpwssd.
    {
      __m512i mn[8];
      for (int j = 0; j < 4; ++j) mn[j] = _mm512_and_si512(sbyte(j + 4), m63);
      for (int j = 4; j < 8; ++j)
        mn[j] = _mm512_or_si512(_mm512_srli_epi32(sbyte(j + 4), 4), _mm512_slli_epi32(_mm512_srli_epi32(sbyte(j), 6), 4));
      __m512i pair[4];
      for (int q = 0; q < 4; ++q) pair[q] = _mm512_or_si512(mn[2 * q], _mm512_slli_epi32(mn[2 * q + 1], 16));
      const __m512 dmin = halves(p.dmin);
      for (int t = 0; t < T; ++t) {
        const ActBlock256& x = a[t][i];
        int32_t sums[4];  // sub-block sums as int16 pairs, matching `pair`
        _mm_storeu_si128(reinterpret_cast<__m128i*>(sums), _mm_hadd_epi16(load128(x.bsums), load128(x.bsums + 8)));
        __m512i m = _mm512_setzero_si512();
        for (int q = 0; q < 4; ++q) m = _mm512_dpwssd_epi32(m, pair[q], _mm512_set1_epi32(sums[q]));
        accf[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, _mm512_set1_ps(x.d)), accf[t]);
      }
    }
    __m512i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      const __m512i sc = j < 4 ? _mm512_and_si512(sbyte(j), m63)
                               : _mm512_or_si512(_mm512_and_si512(sbyte(j + 4), m15),
                                                 _mm512_slli_epi32(_mm512_srli_epi32(sbyte(j - 4), 6), 4));
      constexpr int C = kChains<T>;
      __m512i acc[C][T];
      zero(acc);
      __m512i h = _mm512_setzero_si512();
      if constexpr (kFive) {
        h = load512(p.sub[j].qh);
      }
      for (int q = 0; q < 4; ++q) {
        const __m512i c = load512(p.sub[j].qs[q]);
        __m512i lo = _mm512_and_si512(c, m4), hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), m4);
        if constexpr (kFive) {
          // Bit q of each qh byte is step q's fifth bit, bit q + 4 step q + 4's: move both to bit 4.
          lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi16(h, 4 - q), bit4, 0xF8);
          hi = _mm512_ternarylogic_epi32(hi, _mm512_srli_epi16(h, q), bit4, 0xF8);
        }
        for (int t = 0; t < T; ++t) {
          const int8_t* x = a[t][i].qs + 32 * j + 4 * q;
          __m512i& c0 = acc[(2 * q) % C][t];
          c0 = _mm512_dpbusd_epi32(c0, lo, word(x));
          __m512i& c1 = acc[(2 * q + 1) % C][t];
          c1 = _mm512_dpbusd_epi32(c1, hi, word(x + 16));
        }
      }
      for (int t = 0; t < T; ++t) sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(chain_sum(acc, t), sc));
    }
    const __m512 d = halves(p.d);
    for (int t = 0; t < T; ++t)
      accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(d, _mm512_set1_ps(a[t][i].d)), accf[t]);
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride, accf[t]);
}

template <int T>
void q6_k_tile(const PackedQ6_K* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  __m512 accf[T];
  for (int t = 0; t < T; ++t) accf[t] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ6_K& p = blk[i];
    prefetch_block_ahead(&p, sizeof(p));
    // Levels are stored +32: each 16-value group subtracts 32 * (its activation sum).
    alignas(64) int32_t offset[T][16];
    for (int t = 0; t < T; ++t)
      _mm512_store_si512(offset[t], _mm512_slli_epi32(_mm512_cvtepi16_epi32(load256(a[t][i].bsums)), 5));
    __m512i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
    for (int g = 0; g < 16; ++g) {
      const __m512i sc = _mm512_cvtepi8_epi32(load128(p.scales[g]));
      const __m512i l0 = load512(p.g[g].ql[0]), l1 = load512(p.g[g].ql[1]), h = load512(p.g[g].qh);
      constexpr int C = kChains<T>;
      __m512i acc[C][T];
      zero(acc);
      for (int sub = 0; sub < 4; ++sub) {
        const __m512i l = sub < 2 ? l0 : l1;
        const __m512i nib = _mm512_and_si512(sub % 2 ? _mm512_srli_epi16(l, 4) : l, m4);
        const __m512i high = sub == 0 ? _mm512_slli_epi16(h, 4)
                             : sub == 1 ? _mm512_slli_epi16(h, 2)
                             : sub == 2 ? h
                                        : _mm512_srli_epi16(h, 2);
        const __m512i w = _mm512_ternarylogic_epi32(nib, high, m30, 0xF8);  // nib | (high & 0x30)
        for (int t = 0; t < T; ++t)
          acc[sub % C][t] = _mm512_dpbusd_epi32(acc[sub % C][t], w, word(a[t][i].qs + 16 * g + 4 * sub));
      }
      for (int t = 0; t < T; ++t)
        sumi[t] = _mm512_add_epi32(
            sumi[t], _mm512_mullo_epi32(_mm512_sub_epi32(chain_sum(acc, t), _mm512_set1_epi32(offset[t][g])), sc));
    }
    const __m512 d = halves(p.d);
    for (int t = 0; t < T; ++t)
      accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(d, _mm512_set1_ps(a[t][i].d)), accf[t]);
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride, accf[t]);
}

#include "kernels/packed_tiles.inc"

}  // namespace

bool packed_kernels_supported() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vnni");
  return yes;
}

void packed_matmul_groups(const Weight& W, const uint8_t* act, size_t act_stride, int64_t n_tok,
                          int64_t g0, int64_t g1, float* y, int64_t y_stride) {
  run_packed(W, act, act_stride, n_tok, g0, g1, y, y_stride);
}

}  // namespace kexa::kernels

#include "kernels/avx512_vnni_end.inc"

#else  // not x86-64: nothing is ever packed.

namespace kexa::kernels {
bool packed_kernels_supported() { return false; }
void packed_matmul_groups(const Weight& W, const uint8_t*, size_t, int64_t, int64_t, int64_t, float*, int64_t) {
  fail("packed matmul: ", W.name, ": packed kernels need x86-64 AVX-512");
}
}  // namespace kexa::kernels

#endif
