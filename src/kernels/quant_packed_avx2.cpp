// Kernels on packed weights (packed.h) for AVX2 + FMA + F16C. Same layouts and tile shape as the
// AVX-512 VNNI kernels: each 64-byte step of a 16-row group (16 rows x 4 values) is unpacked once
// and fed to every token of the tile with the token's 4 activation bytes broadcast, so the int32
// lanes are row outputs and the per-row scales multiply lane by lane. A 256-bit register holds
// half a step (8 rows), so a block is walked once per half; both halves of a line come from L1.
//
// Without vpdpbusd the int8 dot is vpmaddubsw (u8 x s8 -> pairwise int16 sums, saturating) then
// vpmaddwd. Saturation never happens: levels are bounded so that the int16 sums kept before the
// vpmaddwd stay below 2^15 (bounds at each kernel), and the vpmaddwd that widens them also applies
// the per-row scale. Every integer sum is therefore exact, and each token's floats are combined in
// the same order whatever the tile size, so a batch equals its rows one by one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/packed.h"
#include "kernels/packed_blocks.h"
#include "kernels/quant_blocks.h"
#include "util/error.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/avx2_begin.inc"

namespace kexa::kernels {

using namespace quant;

namespace {

using namespace packed;

constexpr int H = R / 2;  // rows per 256-bit half step

// Tokens per tile: the innermost loops hold one int16 sum per token (8 tokens + the unpacked
// weights + a broadcast fit the 16 ymm registers); the int32 and float sums, touched once per
// sub-block or block, live in L1. 8 against 4: 7-15% less CPU time per token (Zen 3, 4096 x 2048,
// 8 and 512 tokens), as each unpacked weight register serves twice the tokens.
constexpr int kTileTokens = 8;

// Software prefetch distance in bytes. Q8_0 and Q4_0 request every line of a block 4 KiB ahead
// as the block starts (prefetch_ahead), as on AVX-512. Q4_K, Q5_K and Q6_K request each slice of
// a block (its scales, then each sub-block or group) as they reach it (prefetch_slice). Before,
// Q4_K and Q5_K asked for their own block's lines at its start (Zen 3, CPU time of a one-token
// 102400 x 2048 product from DRAM, one thread, under load: Q4_K 6.6 ms there, 7.5-7.8 at 4096,
// 8.3-8.9 without software prefetch); Q4_0 (4.5 lines a block) measured 7.6-8.5 ms at its own
// block against 6.4-7.4 at 4096. KEXA_PREFETCH (bytes, or "off") overrides the distance for
// every type, to compare on a quiet machine.
const int prefetch_override = [] {
  const char* env = std::getenv("KEXA_PREFETCH");
  if (env == nullptr || *env == '\0') return -2;
  if (std::strcmp(env, "off") == 0) return -1;
  const long v = std::strtol(env, nullptr, 10);
  return v < 0 || v > (1 << 20) ? -2 : static_cast<int>(v) & ~63;
}();

template <int kAhead>
inline void prefetch_ahead(const void* block, size_t bytes) {
  const int ahead = prefetch_override == -2 ? kAhead : prefetch_override;
  if (ahead < 0) return;
  const auto begin = reinterpret_cast<uintptr_t>(block) & ~uintptr_t{63};
  const auto end = reinterpret_cast<uintptr_t>(block) + bytes;
  for (uintptr_t line = begin; line < end; line += 64)
    __builtin_prefetch(reinterpret_cast<const char*>(line + ahead), 0, 2);
}
// Slice by slice rather than all of a block's lines at its start: a burst of 36-53 requests
// fills the core's miss buffers and stalls the loads behind it, and the per-line loop costs
// instructions (12-16% of a one-token product's CPU time from L2). Zen 3, CPU time per
// 102400 x 2048 product from DRAM (one thread, under load): Q4_K one token 6.6-7.0 -> 5.2-5.5 ms,
// Q6_K one token 12.5-13.5 -> 7.1-7.9 ms (with the joined tile), Q6_K 8 tokens 26.0-26.6 ->
// 21.9-22.4 ms (4 KiB ahead), Q4_K / Q5_K 8 tokens 19.0 / 28.7 -> 18.4 / 26.7 ms; for one token
// any distance from 2 to 8 blocks was within the noise, one block was worse.
constexpr int kSpreadAhead = 8192;
inline int prefetch_distance(int ahead) { return prefetch_override == -2 ? ahead : prefetch_override; }
// Every 64 bytes of [p, p + kBytes), `ahead` bytes further (none when ahead < 0). A misaligned
// slice's last, partial line is the next slice's first and is requested with that slice.
template <size_t kBytes>
inline void prefetch_slice(const void* p, int ahead) {
  if (ahead < 0) return;
  const char* q = static_cast<const char*>(p) + ahead;
#pragma GCC unroll 16
  for (size_t off = 0; off < kBytes; off += 64) __builtin_prefetch(q + off, 0, 2);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load64(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }
// The 8 half-float scales of one half's rows.
inline __m256 halves8(const uint16_t* h) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))); }

// Four activation bytes in every int32 lane.
inline __m256i word(const int8_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return _mm256_set1_epi32(v);
}

// A tile's float sums: [half][token], 8 rows each; stored as token t's outputs 0..15.
template <int T>
inline void zero_tile(__m256 (&accf)[2][T]) {
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < T; ++t) accf[h][t] = _mm256_setzero_ps();
}
template <int T>
inline void store_tile(const __m256 (&accf)[2][T], float* y, int64_t y_stride) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(y + t * y_stride + H * h, accf[h][t]);
}

inline __m256i mb(__m256i u, __m256i s) { return _mm256_maddubs_epi16(u, s); }
// Pins a running sum to a register at this point. Without it GCC regroups each token's chain of
// integer adds into a tree over the whole unrolled loop, and the tree's partial sums (one per
// instruction) spill to the stack: a store and a load for every vpmaddubsw.
inline __m256i pin(__m256i v) {
  asm("" : "+x"(v));
  return v;
}

// The low and high nibbles of 32 packed bytes (two 4-bit levels per byte).
inline void nibbles(__m256i c, __m256i m4, __m256i& lo, __m256i& hi) {
  lo = _mm256_and_si256(c, m4);
  hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), m4);
}
// One step of a token: the low-nibble levels against activation bytes x[0..3], the high ones
// against x[16..19], as the rows' int16 pair sums.
inline __m256i nibble_step(__m256i lo, __m256i hi, const int8_t* x) {
  return _mm256_add_epi16(mb(lo, word(x)), mb(hi, word(x + 16)));
}
// One half's float sums: accf[t] += sumi[t] * d * token t's activation scale, with d the 8 rows'
// half-float scales at `d_half`.
template <int T, class Act>
inline void add_scaled(__m256 (&accf)[T], const __m256i (&sumi)[T], const uint16_t* d_half, const Act* const* a,
                       int64_t i) {
  const __m256 d = halves8(d_half);
  for (int t = 0; t < T; ++t)
    accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), _mm256_mul_ps(d, _mm256_set1_ps(a[t][i].d)), accf[t]);
}

template <int T>
void q8_0_tile(const PackedQ8_0* blk, int64_t nb, const ActBlock32* const* a, float* y, int64_t y_stride) {
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80)), ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ8_0& p = blk[i];
    prefetch_ahead<kPrefetchBytes>(&p, sizeof(p));
    for (int h = 0; h < 2; ++h) {
      __m256i acc[T];
      for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_si256();
      for (int s = 0; s < 8; ++s) {
        // Stored q + 128: back to q, then |q| times x with q's sign moved onto x. Pair sums are
        // at most 2 * 128 * 127 = 32512, within int16.
        const __m256i q = _mm256_xor_si256(load256(p.q[s] + 32 * h), bias);
        const __m256i aq = _mm256_sign_epi8(q, q);
        for (int t = 0; t < T; ++t) {
          const __m256i xs = _mm256_sign_epi8(word(a[t][i].qs + 4 * s), q);
          acc[t] = pin(_mm256_add_epi32(acc[t], _mm256_madd_epi16(mb(aq, xs), ones)));
        }
      }
      add_scaled<T>(accf[h], acc, p.d + H * h, a, i);
    }
  }
  store_tile<T>(accf, y, y_stride);
}

// Q4_0: levels 0..15 stored as is, the offset 8 taken off with the activations' block sum. int16
// sums per row pair: a step's two products <= 2 * 15 * 127 = 3810 each, all 4 steps of a half
// 30480.
template <int T>
void q4_0_tile(const PackedQ4_0* blk, int64_t nb, const ActBlock32* const* a, float* y, int64_t y_stride) {
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ4_0& p = blk[i];
    prefetch_ahead<kPrefetchBytes>(&p, sizeof(p));
    for (int h = 0; h < 2; ++h) {
      __m256i acc[T];
      for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_si256();
      for (int s = 0; s < 4; ++s) {
        __m256i lo, hi;
        nibbles(load256(p.qs[s] + 32 * h), m4, lo, hi);
        for (int t = 0; t < T; ++t) {
          const __m256i v = nibble_step(lo, hi, a[t][i].qs + 4 * s);
          acc[t] = pin(s == 0 ? v : _mm256_add_epi16(acc[t], v));
        }
      }
      const __m256 d = halves8(p.d + H * h);
      for (int t = 0; t < T; ++t) {
        const __m256i sumi = _mm256_sub_epi32(_mm256_madd_epi16(acc[t], ones), _mm256_set1_epi32(8 * a[t][i].sum));
        accf[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(d, _mm256_set1_ps(a[t][i].d)), accf[h][t]);
      }
    }
  }
  store_tile<T>(accf, y, y_stride);
}

// Pair masks for vpshufb on a 16-row byte vector broadcast to both 128-bit lanes: int32 lane r of
// half h gets row 8h + r's byte as the int16 pair (b, b) (h = 0, 1).
inline __m256i pair_mask(int h) {
  alignas(32) int8_t m[32];
  for (int r = 0; r < 8; ++r)
    for (int k = 0; k < 4; ++k) m[4 * r + k] = static_cast<int8_t>(k % 2 == 0 ? H * h + r : -1);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
}
// The bytes of 16 rows (one per row) for the 8 rows of one half as int16 pairs (b, b), by that
// half's pair_mask: vpmaddwd with it scales each row's pair sum.
inline __m256i half_pairs(__m128i bytes16, __m256i mask) {
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(bytes16), mask);
}

// A sub-block of both halves (rows 0-7 and 8-15) against N <= 4 tokens, x[t] = token t's 32
// activation bytes of the sub-block: sumi[h][t] += (sc8's byte of each row of half h) * the
// products. Both halves share each activation broadcast; with at most 4 tokens the int16 sums
// stay few enough for the 16 ymm registers (beside the 4 unpacked weight registers) to hold most.
template <int N, bool kFive, class Sub>
[[gnu::always_inline]] inline void q45_k_sub_block(const Sub& sub, const int8_t* const* x, __m128i sc8,
                                                   const __m256i (&pairs)[2], __m256i* sumi0, __m256i* sumi1) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  // int16 sums as in q45_k_tile: 8 steps per sum for Q4_K, 4 for Q5_K.
  constexpr int kSums = kFive ? 2 : 1;
  __m256i acc[2][kSums][N];
  __m256i qh[2];
  for (int h = 0; h < 2; ++h) {
    qh[h] = _mm256_setzero_si256();
    if constexpr (kFive) qh[h] = load256(sub.qh + 32 * h);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    __m256i lo[2], hi[2];
    for (int h = 0; h < 2; ++h) {
      // Pinned: GCC otherwise folds the load into the vpand and loads the chunk a second
      // time for the shift (one token: 5% more CPU time from L2 on Zen 3).
      nibbles(pin(load256(sub.qs[q] + 32 * h)), m4, lo[h], hi[h]);
      if constexpr (kFive) {
        lo[h] = _mm256_or_si256(lo[h], _mm256_and_si256(_mm256_slli_epi16(qh[h], 4 - q), bit4));
        hi[h] = _mm256_or_si256(hi[h], _mm256_and_si256(_mm256_srli_epi16(qh[h], q), bit4));
      }
    }
    const int k = kFive ? q / 2 : 0;
    for (int t = 0; t < N; ++t) {
      const __m256i x0 = word(x[t] + 4 * q), x1 = word(x[t] + 4 * q + 16);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_add_epi16(mb(lo[h], x0), mb(hi[h], x1));
        acc[h][k][t] = pin((kFive ? q % 2 == 0 : q == 0) ? v : _mm256_add_epi16(acc[h][k][t], v));
      }
    }
  }
  __m256i* sumi[2] = {sumi0, sumi1};
  for (int h = 0; h < 2; ++h) {
    const __m256i sc = half_pairs(sc8, pairs[h]);
    for (int t = 0; t < N; ++t)
      for (int k = 0; k < kSums; ++k) sumi[h][t] = _mm256_add_epi32(sumi[h][t], _mm256_madd_epi16(acc[h][k][t], sc));
  }
}

// A K-quant block's per-token sub-block activation sums as int16 pairs (S_2q, S_2q+1), q = 0..3.
template <int T>
inline void pair_sums(const ActBlock256* const* a, int64_t i, int32_t (&sums)[T][4]) {
  for (int t = 0; t < T; ++t) {
    const __m128i* bs = reinterpret_cast<const __m128i*>(a[t][i].bsums);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sums[t]), _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1)));
  }
}

// The six-bit scales and minimums of a Q4_K / Q5_K block's 16 rows, one byte per row: sc8[j] and
// mn8[j] hold sub-block j's. scales[k] holds byte k of every row. j < 4: the low six bits of bytes j
// and j + 4; j >= 4: a nibble of byte j + 4 with the top two bits of byte j - 4 (scale) or j
// (minimum) above it.
template <class Packed>
inline void k_scales_mins(const Packed& p, __m128i (&sc8)[8], __m128i (&mn8)[8]) {
  const __m128i m63 = _mm_set1_epi8(63), m15 = _mm_set1_epi8(15), m30 = _mm_set1_epi8(0x30);
  __m128i s[12];
  for (int k = 0; k < 12; ++k) s[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales[k]));
  for (int j = 0; j < 4; ++j) {
    sc8[j] = _mm_and_si128(s[j], m63);
    mn8[j] = _mm_and_si128(s[j + 4], m63);
    sc8[j + 4] = _mm_or_si128(_mm_and_si128(s[j + 8], m15), _mm_and_si128(_mm_srli_epi16(s[j], 2), m30));
    mn8[j + 4] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(s[j + 8], 4), m15),
                              _mm_and_si128(_mm_srli_epi16(s[j + 4], 2), m30));
  }
}

// The minimums' part of a block: accf[h][t] -= dmin * d_t * sum_j m_j * S_j, the six-bit m_j of the
// 8 rows of half h as int16 pairs against token t's pair sums.
template <int T, class Packed>
inline void subtract_minimums(const Packed& p, const __m128i (&mn8)[8], const int32_t (&sums)[T][4],
                              const ActBlock256* const* a, int64_t i, __m256 (&accf)[2][T]) {
  for (int h = 0; h < 2; ++h) {
    __m256i pair[4];
    for (int q = 0; q < 4; ++q)
      pair[q] = _mm256_cvtepu8_epi16(h == 0 ? _mm_unpacklo_epi8(mn8[2 * q], mn8[2 * q + 1])
                                            : _mm_unpackhi_epi8(mn8[2 * q], mn8[2 * q + 1]));
    const __m256 dmin = halves8(p.dmin + H * h);
    for (int t = 0; t < T; ++t) {
      __m256i m = _mm256_madd_epi16(pair[0], _mm256_set1_epi32(sums[t][0]));
      for (int q = 1; q < 4; ++q) m = _mm256_add_epi32(m, _mm256_madd_epi16(pair[q], _mm256_set1_epi32(sums[t][q])));
      accf[h][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(dmin, _mm256_set1_ps(a[t][i].d)), accf[h][t]);
    }
  }
}

// q45_k_tile for one or two tokens, and Q5_K at every tile size: both halves of a sub-block go
// through the inner loop together, sharing each activation broadcast (1 token: 15% less time per
// matrix on Zen 3), tokens in groups of at most 4, and the six-bit scales and minimums of all 16
// rows are unpacked once per block, one byte per row. Same integer sums and, per half, the same
// float operations in the same order as q45_k_tile. Q5_K with 8 tokens: 1.03 -> 0.85 ms per
// 4096 x 2048 product (Zen 3, one thread), as walking the halves one after the other keeps 16
// int16 sums (two per token) and spills them. Q4_K with 3-8 tokens stays there: this walk, with
// its weights unpacked once per token group, was slower for it (8 tokens: 0.70 -> 0.77 ms, GCC
// spills), and with its inner loop written in asm only 1-2% faster; that kernel is bound by its
// vector integer operations (vpmaddubsw, vpaddw, unpacking, vpmaddwd), not by the broadcasts.
// Nor did taking the broadcasts out help: activation words spread ahead into 32-byte lanes (once
// per product, read as vpmaddubsw memory operands, groups walked block-major so a block's words
// stay in L1) gave 0.675-0.695 ms against 0.688 for Q4_K and 0.84-0.90 against 0.87 for Q6_K (8
// tokens, 4096 x 2048, one thread), though a loop of only the inner steps ran 35% faster that way.
template <int T, bool kFive, class Packed>
void q45_k_tile_joined(const Packed* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const __m256i pairs[2] = {pair_mask(0), pair_mask(1)};
  const int ahead = prefetch_distance(kSpreadAhead);
  for (int64_t i = 0; i < nb; ++i) {
    const Packed& p = blk[i];
    prefetch_slice<offsetof(Packed, sub)>(&p, ahead);
    int32_t sums[T][4];
    pair_sums<T>(a, i, sums);
    __m128i sc8[8], mn8[8];
    k_scales_mins(p, sc8, mn8);
    subtract_minimums<T>(p, mn8, sums, a, i, accf);
    __m256i sumi[2][T];
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < T; ++t) sumi[h][t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      prefetch_slice<sizeof(p.sub[j])>(&p.sub[j], ahead);
      const int8_t* x[T];
      for (int t = 0; t < T; ++t) x[t] = a[t][i].qs + 32 * j;
      constexpr int kFirst = T <= 4 ? T : 4;
      q45_k_sub_block<kFirst, kFive>(p.sub[j], x, sc8[j], pairs, sumi[0], sumi[1]);
      if constexpr (T > 4) q45_k_sub_block<T - 4, kFive>(p.sub[j], x + 4, sc8[j], pairs, sumi[0] + 4, sumi[1] + 4);
    }
    for (int h = 0; h < 2; ++h) add_scaled<T>(accf[h], sumi[h], p.d + H * h, a, i);
  }
  store_tile<T>(accf, y, y_stride);
}

// Q4_K, and Q5_K (kFive) whose fifth bits are merged into the unpacked nibbles. Q4_K with 3-8
// tokens walks the two 8-row halves one after the other, all T tokens' int16 sums in registers;
// the block's scales, minimums and activation pair sums are unpacked once for both halves, as in
// q45_k_tile_joined, and each sub-block's scales reach a half by one byte shuffle (before: seven
// operations per sub-block and half from the packed bytes). On Zen 3 vpmaddubsw, vpmaddwd and FMA
// share two pipes (2 per cycle together; vcvtdq2ps mostly too), vpaddw has three and broadcasts
// from memory take none (measured), so the tile is bound by those pipes and by its instruction
// count: 8 tokens, 256 x 2048 from L2, one thread, fastest of 10 runs in four alternating rounds
// 51.8-53.4 -> 47.1-50.4 us.
template <int T, bool kFive, class Packed>
void q45_k_tile(const Packed* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  if constexpr (T <= 2 || kFive) {
    q45_k_tile_joined<T, kFive>(blk, nb, a, y, y_stride);
    return;
  }
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i pairs[2] = {pair_mask(0), pair_mask(1)};
  const int ahead = prefetch_distance(kSpreadAhead);
  for (int64_t i = 0; i < nb; ++i) {
    const Packed& p = blk[i];
    prefetch_slice<offsetof(Packed, sub)>(&p, ahead);
    int32_t sums[T][4];
    pair_sums<T>(a, i, sums);
    __m128i sc8[8], mn8[8];
    k_scales_mins(p, sc8, mn8);
    subtract_minimums<T>(p, mn8, sums, a, i, accf);
    for (int h = 0; h < 2; ++h) {
      __m256i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        if (h == 0) prefetch_slice<sizeof(p.sub[j])>(&p.sub[j], ahead);
        const __m256i sc = half_pairs(sc8[j], pairs[h]);  // the sub-block's scales of half h
        // int16 sums per row pair: levels <= 15 give pair sums <= 3810, so all 8 steps of the
        // sub-block fit (30480).
        __m256i acc[T];
        for (int q = 0; q < 4; ++q) {
          __m256i lo, hi;
          nibbles(pin(load256(p.sub[j].qs[q] + 32 * h)), m4, lo, hi);
          for (int t = 0; t < T; ++t) {
            const __m256i v = nibble_step(lo, hi, a[t][i].qs + 32 * j + 4 * q);
            acc[t] = pin(q == 0 ? v : _mm256_add_epi16(acc[t], v));
          }
        }
        for (int t = 0; t < T; ++t) sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(acc[t], sc));
      }
      add_scaled<T>(accf[h], sumi, p.d + H * h, a, i);
    }
  }
  store_tile<T>(accf, y, y_stride);
}

// The six-bit levels (stored +32) of steps 4g .. 4g+3 of rows 8h .. 8h+7: low nibbles from ql,
// the two high bits of step 4g+k at bits 2k, 2k+1 of qh. Each ql chunk is pinned to a register,
// as in q45_k_tile_joined, so that it is loaded once.
inline void q6_k_levels(const PackedQ6_K::Group& grp, int h, __m256i (&w)[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i l0 = pin(load256(grp.ql[0] + 32 * h)), l1 = pin(load256(grp.ql[1] + 32 * h));
  const __m256i hb = load256(grp.qh + 32 * h);
  w[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
  w[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
  w[2] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(hb, m30));
  w[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
}
// sumi + the group's 16 products with activations x, times the rows' scales sc (int16 pairs
// (sc, sc)). Levels <= 63: pair sums <= 16002, two steps per int16 sum (32004).
inline __m256i q6_k_group_dot(const __m256i (&w)[4], const int8_t* x, __m256i sc, __m256i sumi) {
  const __m256i s01 = _mm256_add_epi16(mb(w[0], word(x)), mb(w[1], word(x + 4)));
  const __m256i s23 = _mm256_add_epi16(mb(w[2], word(x + 8)), mb(w[3], word(x + 12)));
  return pin(_mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(s01, sc), _mm256_madd_epi16(s23, sc))));
}

// q6_k_tile for one or two tokens: both halves of a group go through the inner loop together,
// sharing each activation broadcast and the load of the group's 16 scales, and the offset term
// is summed over all 16 rows at once. The block's lines are requested group by group, kSpreadAhead
// bytes further, rather than all at its start. Same integer sums and, per half, the same float
// operations in the same order as q6_k_tile.
template <int T>
void q6_k_tile_joined(const PackedQ6_K* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const int ahead = prefetch_distance(kSpreadAhead);
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ6_K& p = blk[i];
    prefetch_slice<offsetof(PackedQ6_K, g)>(&p, ahead);
    // Levels are stored +32: start from -32 * sum_g sc_g * bsum_g (as in q6_k_tile), the signed
    // scales of groups 2k, 2k+1 as int16 pairs, rows 0-7 (h = 0) and 8-15 (h = 1).
    __m256i sumi[2][T];
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < T; ++t) sumi[h][t] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m128i s0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales[2 * k]));
      const __m128i s1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales[2 * k + 1]));
      const __m256i pair[2] = {_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1)),
                               _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(s0, s1))};
      for (int t = 0; t < T; ++t) {
        int32_t b;
        std::memcpy(&b, a[t][i].bsums + 2 * k, 4);
        const __m256i bb = _mm256_set1_epi32(b);
        for (int h = 0; h < 2; ++h) sumi[h][t] = _mm256_add_epi32(sumi[h][t], _mm256_madd_epi16(pair[h], bb));
      }
    }
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < T; ++t) sumi[h][t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sumi[h][t], 5));
    for (int g = 0; g < 16; ++g) {
      prefetch_slice<sizeof(p.g[g])>(&p.g[g], ahead);
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales[g]));
      const __m256i sc[2] = {_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8)),  // (sc, sc) per row
                             _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(s8, s8))};
      for (int h = 0; h < 2; ++h) {
        __m256i w[4];
        q6_k_levels(p.g[g], h, w);
        for (int t = 0; t < T; ++t) sumi[h][t] = q6_k_group_dot(w, a[t][i].qs + 16 * g, sc[h], sumi[h][t]);
      }
    }
    for (int h = 0; h < 2; ++h) add_scaled<T>(accf[h], sumi[h], p.d + H * h, a, i);
  }
  store_tile<T>(accf, y, y_stride);
}

template <int T>
void q6_k_tile(const PackedQ6_K* blk, int64_t nb, const ActBlock256* const* a, float* y, int64_t y_stride) {
  if constexpr (T <= 2) {
    q6_k_tile_joined<T>(blk, nb, a, y, y_stride);
    return;
  }
  __m256 accf[2][T];
  zero_tile<T>(accf);
  const int ahead = prefetch_distance(kPrefetchBytes);
  for (int64_t i = 0; i < nb; ++i) {
    const PackedQ6_K& p = blk[i];
    prefetch_slice<offsetof(PackedQ6_K, g)>(&p, ahead);
    for (int h = 0; h < 2; ++h) {
      // Levels are stored +32: start from -32 * sum_g sc_g * bsum_g, with the signed scales of
      // groups 2k, 2k+1 as int16 pairs against the int16 pair (bsum_2k, bsum_2k+1).
      __m256i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        const __m128i s0 = load64(p.scales[2 * k] + H * h), s1 = load64(p.scales[2 * k + 1] + H * h);
        const __m256i pair = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1));
        for (int t = 0; t < T; ++t) {
          int32_t b;
          std::memcpy(&b, a[t][i].bsums + 2 * k, 4);
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(pair, _mm256_set1_epi32(b)));
        }
      }
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sumi[t], 5));
      for (int g = 0; g < 16; ++g) {
        if (h == 0) prefetch_slice<sizeof(p.g[g])>(&p.g[g], ahead);
        const __m128i s8 = load64(p.scales[g] + H * h);
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8));  // (sc, sc) per row
        __m256i w[4];
        q6_k_levels(p.g[g], h, w);
        for (int t = 0; t < T; ++t) sumi[t] = q6_k_group_dot(w, a[t][i].qs + 16 * g, sc, sumi[t]);
      }
      add_scaled<T>(accf[h], sumi, p.d + H * h, a, i);
    }
  }
  store_tile<T>(accf, y, y_stride);
}

#define KEXA_PACKED_Q4_0 1
#include "kernels/packed_tiles.inc"
#undef KEXA_PACKED_Q4_0

}  // namespace

void packed_matmul_groups_avx2(const Weight& W, const uint8_t* act, size_t act_stride, int64_t n_tok,
                               int64_t g0, int64_t g1, float* y, int64_t y_stride) {
  run_packed(W, act, act_stride, n_tok, g0, g1, y, y_stride);
}

}  // namespace kexa::kernels

#include "kernels/avx2_end.inc"

#else  // not x86-64: nothing is packed for this path.

namespace kexa::kernels {
void packed_matmul_groups_avx2(const Weight& W, const uint8_t*, size_t, int64_t, int64_t, int64_t, float*,
                               int64_t) {
  fail("packed matmul: ", W.name, ": the AVX2 packed kernels need x86-64");
}
}  // namespace kexa::kernels

#endif
