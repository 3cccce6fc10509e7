// AVX-512 float kernels. BF16 weights use vdpbf16ps (AVX512-BF16) when the CPU has it; F16
// weights are widened with vcvtph2ps. Everything below the pragma is compiled for AVX-512 and has
// internal linkage, so no AVX-512 code can leak into functions other paths call.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/float_kernels.h"
#include "kernels/kernels.h"

// GCC 12's AVX-512 headers initialise their "undefined" vectors from themselves, which its own
// -Wmaybe-uninitialized then reports once inlined at -O2 (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")

namespace kexa::kernels::detail {
namespace {

inline __mmask16 tail_mask16(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xffffu : ((1u << n) - 1u));
}
inline __mmask32 tail_mask32(int64_t n) {
  return static_cast<__mmask32>(n >= 32 ? 0xffffffffu : ((1u << n) - 1u));
}

// Weight loaders: 16 consecutive elements widened to f32 (masked: missing lanes are zero).
struct WF32 {
  static constexpr size_t kBytes = 4;
  static __m512 load(const uint8_t* p, int64_t k) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p) + k);
  }
  static __m512 load(const uint8_t* p, int64_t k, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p) + k);
  }
};
struct WF16 {
  static constexpr size_t kBytes = 2;
  static __m512 load(const uint8_t* p, int64_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * k)));
  }
  static __m512 load(const uint8_t* p, int64_t k, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + 2 * k));
  }
};
struct WBF16 {
  static constexpr size_t kBytes = 2;
  static __m512 load(const uint8_t* p, int64_t k) {
    __m512i v =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * k)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
  static __m512 load(const uint8_t* p, int64_t k, __mmask16 m) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p + 2 * k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

inline __m256 fold(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v),
                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// Sums of four vectors at once: lanes 0..3 of the result are sum(a), sum(b), sum(c), sum(d).
inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(fold(a), fold(b)), _mm256_hadd_ps(fold(c), fold(d)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Writes (or adds, for the second and later K blocks) the horizontal sums of a tile of
// accumulators to y[j * ys + i]. Four rows of one token are reduced together and stored as one
// 4-float vector.
template <int RM, int RN>
inline void store_tile(__m512 (&acc)[RM][RN], float* y, int64_t ys, bool accumulate) {
  if constexpr (RM == 4) {
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m128 v = reduce4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]);
      if (accumulate) v = _mm_add_ps(v, _mm_loadu_ps(y + j * ys));
      _mm_storeu_ps(y + j * ys, v);
    }
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < RN; ++j) {
        const float v = _mm512_reduce_add_ps(acc[i][j]);
        y[j * ys + i] = accumulate ? y[j * ys + i] + v : v;
      }
  }
}

// RM weight rows x RN tokens of dot products over K, f32 FMA. Rows are `ws` bytes apart,
// tokens `xs` floats apart, outputs y[j * ys + i].
template <typename L, int RM, int RN>
void micro_fma(const uint8_t* w, size_t ws, const float* x, int64_t xs, int64_t K, float* y,
               int64_t ys, bool accumulate) {
  __m512 acc[RM][RN];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) wv[i] = L::load(w + i * ws, k);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m512 xv = _mm512_loadu_ps(x + j * xs + k);
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = tail_mask16(K - k);
    __m512 wv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) wv[i] = L::load(w + i * ws, k, m);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + j * xs + k);
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  store_tile<RM, RN>(acc, y, ys, accumulate);
}

// The same with bf16 weights and bf16 activations: vdpbf16ps multiplies 32 pairs per instruction
// and accumulates in f32.
template <int RM, int RN>
void micro_dp(const uint8_t* w, size_t ws, const uint16_t* x, int64_t xs, int64_t K, float* y,
              int64_t ys, bool accumulate) {
  __m512 acc[RM][RN];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512bh wv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i)
      wv[i] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + i * ws + 2 * k));
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m512bh xv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + j * xs + k));
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], xv);
    }
  }
  if (k < K) {
    const __mmask32 m = tail_mask32(K - k);
    __m512bh wv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i)
      wv[i] = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, w + i * ws + 2 * k));
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m512bh xv = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, x + j * xs + k));
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], xv);
    }
  }
  store_tile<RM, RN>(acc, y, ys, accumulate);
}

// Register tile: RM rows x RN tokens accumulators plus RM weight vectors fit the 32 zmm registers.
constexpr int kRM = 4;
constexpr int kRN = 6;

template <typename L>
struct FmaTile {
  using Elem = float;
  static constexpr size_t kWBytes = L::kBytes;
  template <int RM, int RN>
  static void run(const uint8_t* w, size_t ws, const float* x, int64_t xs, int64_t K, float* y,
                  int64_t ys, bool accumulate) {
    micro_fma<L, RM, RN>(w, ws, x, xs, K, y, ys, accumulate);
  }
};

struct DpTile {
  using Elem = uint16_t;
  static constexpr size_t kWBytes = 2;
  template <int RM, int RN>
  static void run(const uint8_t* w, size_t ws, const uint16_t* x, int64_t xs, int64_t K, float* y,
                  int64_t ys, bool accumulate) {
    micro_dp<RM, RN>(w, ws, x, xs, K, y, ys, accumulate);
  }
};

template <typename Tile, int RN>
void run_rows(int rm, const uint8_t* w, size_t ws, const typename Tile::Elem* x, int64_t xs,
              int64_t K, float* y, int64_t ys, bool accumulate) {
  switch (rm) {
    case 4:
      Tile::template run<4, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 3:
      Tile::template run<3, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 2:
      Tile::template run<2, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    default:
      Tile::template run<1, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
  }
}

template <typename Tile>
void run_tile(int rm, int rn, const uint8_t* w, size_t ws, const typename Tile::Elem* x, int64_t xs,
              int64_t K, float* y, int64_t ys, bool accumulate) {
  switch (rn) {
    case 6:
      run_rows<Tile, 6>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 5:
      run_rows<Tile, 5>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 4:
      run_rows<Tile, 4>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 3:
      run_rows<Tile, 3>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 2:
      run_rows<Tile, 2>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
    default:
      run_rows<Tile, 1>(rm, w, ws, x, xs, K, y, ys, accumulate);
      break;
  }
}

// Rows [r0, r1) x all tokens; `w` points at row r0, rows `ws` bytes apart. The reduction
// dimension is cut into blocks of `kc` elements so that one token block's activations (kRN x kc)
// and the chunk's weight slice stay in L1/L2; within a block, token blocks form the outer loop
// and the chunk's rows stream past the token block held in L1. Decode (one token) needs no
// blocking: each row is read once.
template <typename Tile>
void gemm(const uint8_t* w, size_t ws, const typename Tile::Elem* x, int64_t K, int64_t T, float* y,
          int64_t rows, int64_t r0, int64_t r1, int64_t kc) {
  if (T == 1) kc = K;
  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t klen = std::min(kc, K - k0);
    for (int64_t t = 0; t < T; t += kRN) {
      const int rn = static_cast<int>(std::min<int64_t>(kRN, T - t));
      for (int64_t r = r0; r < r1; r += kRM) {
        const int rm = static_cast<int>(std::min<int64_t>(kRM, r1 - r));
        run_tile<Tile>(rm, rn, w + (r - r0) * ws + k0 * Tile::kWBytes, ws, x + t * K + k0, K, klen,
                       y + t * rows + r, rows, k0 > 0);
      }
    }
  }
}

// K block sizes: 2 KiB of each weight row and activation row per block.
constexpr int64_t kKcF32 = 512;
constexpr int64_t kKcBf16 = 1024;

template <typename L>
void rows_fma(const MatmulArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const float*>(a.x);
  const int64_t K = a.cols;
  const size_t ws = static_cast<size_t>(K) * L::kBytes;
  if (L::kBytes != 4 && a.n_tokens > 1 && scratch != nullptr) {
    // Widen the chunk once; every token block then reuses the f32 copy.
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* src = w + r * ws;
      float* dst = scratch + (r - r0) * K;
      int64_t k = 0;
      for (; k + 16 <= K; k += 16) _mm512_storeu_ps(dst + k, L::load(src, k));
      if (k < K) {
        const __mmask16 m = tail_mask16(K - k);
        _mm512_mask_storeu_ps(dst + k, m, L::load(src, k, m));
      }
    }
    gemm<FmaTile<WF32>>(reinterpret_cast<const uint8_t*>(scratch), static_cast<size_t>(K) * 4, x, K,
                        a.n_tokens, a.y, a.rows, r0, r1, kKcF32);
    return;
  }
  gemm<FmaTile<L>>(w + r0 * ws, ws, x, K, a.n_tokens, a.y, a.rows, r0, r1, kKcF32);
}

// Asking for the line 4 KiB ahead of each weight load: hardware prefetchers stop at 4 KiB page
// boundaries, and on Intel server cores they alone reach about half the DRAM rate (102400 x 2048
// bf16 matvec, Xeon with AMX, 2 threads: 19.9 -> 25.1 GB/s; 1 thread: 9.3 -> 13.1).
constexpr int kPrefetchBytes = 4096;

// One token (decode): each weight row is read start to end before the next one, so the thread
// reads one sequential stream that the hardware prefetchers follow across rows; interleaving four
// rows (the GEMM tile) makes four short streams and measured ~1.6x slower per CPU second on a
// matrix far beyond the caches. Four accumulators hide the vdpbf16ps latency.
float dot_row_bf16(const uint8_t* w, const uint16_t* x, int64_t K) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int64_t k = 0;
  for (; k + 128 <= K; k += 128) {
    const char* ahead = reinterpret_cast<const char*>(w + 2 * k) + kPrefetchBytes;
    _mm_prefetch(ahead, _MM_HINT_T1);
    _mm_prefetch(ahead + 64, _MM_HINT_T1);
    _mm_prefetch(ahead + 128, _MM_HINT_T1);
    _mm_prefetch(ahead + 192, _MM_HINT_T1);
    acc0 = _mm512_dpbf16_ps(acc0, reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + 2 * k)),
                            reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + k)));
    acc1 = _mm512_dpbf16_ps(acc1, reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + 2 * k + 64)),
                            reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + k + 32)));
    acc2 = _mm512_dpbf16_ps(acc2, reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + 2 * k + 128)),
                            reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + k + 64)));
    acc3 = _mm512_dpbf16_ps(acc3, reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + 2 * k + 192)),
                            reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + k + 96)));
  }
  for (; k < K; k += 32) {
    const __mmask32 m = tail_mask32(K - k);
    acc0 = _mm512_dpbf16_ps(acc0, reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, w + 2 * k)),
                            reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, x + k)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

void rows_bf16_dp(const MatmulArgs& a, int64_t r0, int64_t r1, float*) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const size_t ws = static_cast<size_t>(a.cols) * 2;
  if (a.n_tokens == 1) {
    const auto* x = static_cast<const uint16_t*>(a.x);
    for (int64_t r = r0; r < r1; ++r) a.y[r] = dot_row_bf16(w + static_cast<size_t>(r) * ws, x, a.cols);
    return;
  }
  gemm<DpTile>(w + r0 * ws, ws, static_cast<const uint16_t*>(a.x), a.cols, a.n_tokens, a.y, a.rows,
               r0, r1, kKcBf16);
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, reinterpret_cast<__m512i>(v));
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

// Rounds to bf16 precision, nearest even, with integer arithmetic (no AVX512-BF16 needed).
inline __m512i round_bf16_bits(__m512i b) {
  const __m512i keep = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r =
      _mm512_and_si512(_mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), keep);
  // NaNs keep their (quieted) payload instead of being rounded into infinities.
  __mmask16 nan = _mm512_cmp_ps_mask(_mm512_castsi512_ps(b), _mm512_castsi512_ps(b), _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(r, nan, _mm512_and_si512(b, keep), _mm512_set1_epi32(0x00400000));
}

void to_bf16_int(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i r = round_bf16_bits(_mm512_castps_si512(_mm512_loadu_ps(x + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

void round_bf16(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(
        out + i, _mm512_castsi512_ps(round_bf16_bits(_mm512_castps_si512(_mm512_loadu_ps(x + i)))));
  for (; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

// exp(x) for f32 lanes: x = n*ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r (Cephes
// coefficients, ~1 ulp), and scalef for 2^n, which also gives exact overflow to inf and gradual
// underflow to 0.
inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out) {
  // Squares summed in double (as llama.cpp does) so long rows lose nothing.
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    s0 = _mm512_fmadd_pd(lo, lo, s0);
    s1 = _mm512_fmadd_pd(hi, hi, s1);
  }
  double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    if (w != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
  }
  const float maxv = _mm512_reduce_max_ps(mx);
  const __m512 vmax = _mm512_set1_ps(maxv);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax));
    e = _mm512_maskz_mov_ps(m, e);
    sum = _mm512_add_ps(sum, e);
    _mm512_mask_storeu_ps(x + i, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void f16_to_f32_array(const uint16_t* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}

void f32_to_f16_array(const float* in, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, in + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

// Sums of four vectors at once: lanes 0..3 of the result are sum(a), sum(b), sum(c), sum(d).
template <int NC>
void dot_rows_fixed(const float* q, const float* rows, int64_t stride, int64_t n, float scale,
                    float* scores) {
  __m512 qv[NC];
#pragma GCC unroll 16
  for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  const __m128 vs = _mm_set1_ps(scale);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m512 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const float* r = rows + (j + i) * stride;
      acc[i] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(r));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c)
        acc[i] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(r + 16 * c), acc[i]);
    }
    _mm_storeu_ps(scores + j, _mm_mul_ps(reduce4(acc[0], acc[1], acc[2], acc[3]), vs));
  }
  if (j < n) {
    // The last 1-3 keys go through the same reduction as a group of four (lane i of reduce4 sums
    // only its own input), so a key's score does not depend on where the caller's range began.
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; j + i < n; ++i) {
      const float* r = rows + (j + i) * stride;
      acc[i] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(r));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c) acc[i] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(r + 16 * c), acc[i]);
    }
    const __m128 v = _mm_mul_ps(reduce4(acc[0], acc[1], acc[2], acc[3]), vs);
    _mm_mask_storeu_ps(scores + j, static_cast<__mmask8>((1u << (n - j)) - 1), v);
  }
}

// Head sizes other than 64 and 128.
void dot_rows_one(const float* q, const float* rows, int64_t stride, int64_t n, int64_t dim,
                  float scale, float* scores) {
  for (int64_t j = 0; j < n; ++j) {
    const float* r = rows + j * stride;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16) {
      const __mmask16 m = tail_mask16(dim - d);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, r + d), acc);
    }
    scores[j] = _mm512_reduce_add_ps(acc) * scale;
  }
}

// HB heads times four keys at once: each key chunk is loaded once for all heads, and the 4 * HB
// accumulators are independent FMA chains. Every (head, key) sum is formed and reduced exactly
// as dot_rows_fixed forms it for one head alone.
template <int NC, int HB>
void dot_heads(const float* q, int64_t q_stride, const float* rows, int64_t stride, int64_t n, float scale,
               float* scores, int64_t scores_stride) {
  const __m128 vs = _mm_set1_ps(scale);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m512 acc[HB][4];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      __m512 kv[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) kv[i] = _mm512_loadu_ps(rows + (j + i) * stride + 16 * c);
#pragma GCC unroll 4
      for (int h = 0; h < HB; ++h) {
        const __m512 qv = _mm512_loadu_ps(q + h * q_stride + 16 * c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) acc[h][i] = c == 0 ? _mm512_mul_ps(qv, kv[i]) : _mm512_fmadd_ps(qv, kv[i], acc[h][i]);
      }
    }
#pragma GCC unroll 4
    for (int h = 0; h < HB; ++h)
      _mm_storeu_ps(scores + h * scores_stride + j, _mm_mul_ps(reduce4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]), vs));
  }
  if (j < n)
    for (int h = 0; h < HB; ++h)
      dot_rows_fixed<NC>(q + h * q_stride, rows + j * stride, stride, n - j, scale, scores + h * scores_stride + j);
}

template <int NC>
void dot_rows_grouped(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride, int64_t n,
                      float scale, float* scores, int64_t scores_stride) {
  for (int64_t h = 0; h < n_q; h += 4) {
    const float* qh = q + h * q_stride;
    float* sh = scores + h * scores_stride;
    switch (std::min<int64_t>(4, n_q - h)) {
      case 4: dot_heads<NC, 4>(qh, q_stride, rows, stride, n, scale, sh, scores_stride); break;
      case 3: dot_heads<NC, 3>(qh, q_stride, rows, stride, n, scale, sh, scores_stride); break;
      case 2: dot_heads<NC, 2>(qh, q_stride, rows, stride, n, scale, sh, scores_stride); break;
      default: dot_heads<NC, 1>(qh, q_stride, rows, stride, n, scale, sh, scores_stride); break;
    }
  }
}

void dot_rows(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride,
              int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  if (dim == 64) return dot_rows_grouped<4>(q, n_q, q_stride, rows, stride, n, scale, scores, scores_stride);
  if (dim == 128) return dot_rows_grouped<8>(q, n_q, q_stride, rows, stride, n, scale, scores, scores_stride);
  for (int64_t h = 0; h < n_q; ++h)
    dot_rows_one(q + h * q_stride, rows, stride, n, dim, scale, scores + h * scores_stride);
}

// HB heads at once: each value row is loaded once for all of them, and the HB * NC accumulators
// are independent FMA chains (one head of 64 values alone has only four, which wait on the FMA
// latency). Each accumulator still sums its rows in order, as a head alone does.
template <int NC, int HB>
void accumulate_heads(const float* p, int64_t p_stride, const float* rows, int64_t stride, int64_t n,
                      float* out, int64_t out_stride) {
  __m512 acc[HB][NC];
#pragma GCC unroll 4
  for (int h = 0; h < HB; ++h)
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) acc[h][c] = _mm512_loadu_ps(out + h * out_stride + 16 * c);
  for (int64_t j = 0; j < n; ++j) {
    const float* r = rows + j * stride;
    __m512 v[NC];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) v[c] = _mm512_loadu_ps(r + 16 * c);
#pragma GCC unroll 4
    for (int h = 0; h < HB; ++h) {
      const __m512 pj = _mm512_set1_ps(p[h * p_stride + j]);
#pragma GCC unroll 16
      for (int c = 0; c < NC; ++c) acc[h][c] = _mm512_fmadd_ps(pj, v[c], acc[h][c]);
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < HB; ++h)
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + h * out_stride + 16 * c, acc[h][c]);
}

template <int NC>
void accumulate_rows_fixed(const float* p, int64_t n_q, int64_t p_stride, const float* rows, int64_t stride,
                           int64_t n, float* out, int64_t out_stride) {
  constexpr int kHeads = 16 / NC;  // 16 accumulators
  int64_t h = 0;
  for (; h + kHeads <= n_q; h += kHeads)
    accumulate_heads<NC, kHeads>(p + h * p_stride, p_stride, rows, stride, n, out + h * out_stride, out_stride);
  const float* ph = p + h * p_stride;
  float* oh = out + h * out_stride;
  switch (n_q - h) {
    case 3: accumulate_heads<NC, 3>(ph, p_stride, rows, stride, n, oh, out_stride); break;
    case 2: accumulate_heads<NC, 2>(ph, p_stride, rows, stride, n, oh, out_stride); break;
    case 1: accumulate_heads<NC, 1>(ph, p_stride, rows, stride, n, oh, out_stride); break;
    default: break;
  }
}

void accumulate_rows(const float* p, int64_t n_q, int64_t p_stride, const float* rows, int64_t stride,
                     int64_t n, int64_t dim, float* out, int64_t out_stride) {
  if (dim == 64) return accumulate_rows_fixed<4>(p, n_q, p_stride, rows, stride, n, out, out_stride);
  if (dim == 128) return accumulate_rows_fixed<8>(p, n_q, p_stride, rows, stride, n, out, out_stride);
  for (int64_t h = 0; h < n_q; ++h) {
    float* o = out + h * out_stride;
    for (int64_t d = 0; d < dim; d += 16) {
      const __mmask16 m = tail_mask16(dim - d);
      __m512 acc = _mm512_maskz_loadu_ps(m, o + d);
      for (int64_t j = 0; j < n; ++j)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(p[h * p_stride + j]), _mm512_maskz_loadu_ps(m, rows + j * stride + d), acc);
      _mm512_mask_storeu_ps(o + d, m, acc);
    }
  }
}

}  // namespace
}  // namespace kexa::kernels::detail

#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace kexa::kernels::detail {

const FloatKernelSet& avx512_kernels() {
  // AVX-512 CPUs without the BF16 extension (Skylake-X, Ice Lake) widen bf16 weights instead.
  static const FloatKernelSet with_dp = {
      rows_fma<WF32>, rows_fma<WF16>,   rows_bf16_dp, true,
      to_bf16,        round_bf16,       rmsnorm,      swiglu,
      softmax,        f16_to_f32_array, f32_to_f16_array, dot_rows,     accumulate_rows,
      nullptr,        nullptr,          exp_sum_portable,
  };
  static const FloatKernelSet without_dp = {
      rows_fma<WF32>, rows_fma<WF16>,   rows_fma<WBF16>, false,
      to_bf16_int,    round_bf16,       rmsnorm,         swiglu,
      softmax,        f16_to_f32_array, f32_to_f16_array, dot_rows,        accumulate_rows,
      nullptr,        nullptr,          exp_sum_portable,
  };
  return avx512_bf16_supported() ? with_dp : without_dp;
}

}  // namespace kexa::kernels::detail
