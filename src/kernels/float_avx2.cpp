// AVX2 + FMA + F16C float kernels (x86-64 CPUs since Haswell / Zen 1). BF16 weights are widened
// by a 16-bit shift and multiplied in f32 with activations rounded to bf16. Everything below the
// pragma is compiled for AVX2 and has internal linkage, so no AVX2 code can leak into functions
// other paths call.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/float_kernels.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace kexa::kernels::detail {
namespace {

struct WF32 {
  static constexpr size_t kBytes = 4;
  static __m256 load(const uint8_t* p, int64_t k) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + k);
  }
  static float at(const uint8_t* p, int64_t k) {
    float v;
    std::memcpy(&v, p + 4 * k, 4);
    return v;
  }
};
struct WF16 {
  static constexpr size_t kBytes = 2;
  static __m256 load(const uint8_t* p, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k)));
  }
  static float at(const uint8_t* p, int64_t k) {
    uint16_t h;
    std::memcpy(&h, p + 2 * k, 2);
    return f16_to_f32(h);
  }
};
struct WBF16 {
  static constexpr size_t kBytes = 2;
  static __m256 load(const uint8_t* p, int64_t k) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static float at(const uint8_t* p, int64_t k) {
    uint16_t h;
    std::memcpy(&h, p + 2 * k, 2);
    return bf16_to_f32(h);
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// RM weight rows x RN tokens of dot products; RM*RN accumulators + RM weight vectors must fit the
// 16 ymm registers. The K remainder (< 8) is summed in scalar code.
template <typename L, int RM, int RN>
void micro(const uint8_t* w, size_t ws, const float* x, int64_t xs, int64_t K, float* y, int64_t ys,
           bool accumulate) {
  __m256 acc[RM][RN];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) wv[i] = L::load(w + i * ws, k);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      __m256 xv = _mm256_loadu_ps(x + j * xs + k);
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t kk = k; kk < K; ++kk) s += L::at(w + i * ws, kk) * x[j * xs + kk];
      y[j * ys + i] = accumulate ? y[j * ys + i] + s : s;
    }
}

constexpr int kRM = 4;
constexpr int kRN = 3;

template <typename L, int RN>
void run_rows(int rm, const uint8_t* w, size_t ws, const float* x, int64_t xs, int64_t K, float* y,
              int64_t ys, bool accumulate) {
  switch (rm) {
    case 4:
      micro<L, 4, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 3:
      micro<L, 3, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    case 2:
      micro<L, 2, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
    default:
      micro<L, 1, RN>(w, ws, x, xs, K, y, ys, accumulate);
      break;
  }
}

// Rows [r0, r1) x all tokens; `w` points at row r0. The reduction dimension is cut into blocks
// of kKc elements so a token block's activations and the chunk's weight slice stay in L1/L2;
// within a block, token blocks form the outer loop and the chunk's rows stream past them.
constexpr int64_t kKc = 512;

template <typename L>
void gemm(const uint8_t* w, size_t ws, const float* x, int64_t K, int64_t T, float* y, int64_t rows,
          int64_t r0, int64_t r1) {
  const int64_t kc = T == 1 ? K : kKc;
  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t klen = std::min(kc, K - k0);
    const bool accumulate = k0 > 0;
    for (int64_t t = 0; t < T; t += kRN) {
      const int rn = static_cast<int>(std::min<int64_t>(kRN, T - t));
      for (int64_t r = r0; r < r1; r += kRM) {
        const int rm = static_cast<int>(std::min<int64_t>(kRM, r1 - r));
        const uint8_t* wr = w + (r - r0) * ws + k0 * L::kBytes;
        const float* xt = x + t * K + k0;
        float* yt = y + t * rows + r;
        if (rn == 3)
          run_rows<L, 3>(rm, wr, ws, xt, K, klen, yt, rows, accumulate);
        else if (rn == 2)
          run_rows<L, 2>(rm, wr, ws, xt, K, klen, yt, rows, accumulate);
        else
          run_rows<L, 1>(rm, wr, ws, xt, K, klen, yt, rows, accumulate);
      }
    }
  }
}

// Several tokens on 16-bit weights: the chunk's rows are widened once into panels of 8 rows,
// k-major (panel p holds row 8p + i's value k at [8k + i]), so a micro-kernel multiplies 2 panels
// (16 rows) by 6 tokens with two weight loads and six broadcasts per k, 12 FMAs, and its
// accumulators are 8 consecutive outputs of one token: no horizontal sums, one store each.
// Blocks of kKc values of k keep a token block's activations in L1 while the panels pass.
constexpr int kPanelTokens = 6;

// 8 rows x 8 values (r[i] = row i) to 8 values x 8 rows (r[k] = value k of every row).
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// NP panels x NT tokens over klen values of k; `w` at the panels' value k0, `x` at token 0's k0.
template <int NP, int NT>
void panel_micro(const float* w, size_t panel_stride, const float* x, int64_t xs, int64_t klen, float* y,
                 int64_t ys, bool accumulate) {
  __m256 acc[NP][NT];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[p][t] = _mm256_setzero_ps();
  for (int64_t k = 0; k < klen; ++k) {
    __m256 wv[NP];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) wv[p] = _mm256_loadu_ps(w + p * panel_stride + 8 * k);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * xs + k);
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) acc[p][t] = _mm256_fmadd_ps(wv[p], xb, acc[p][t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      float* out = y + t * ys + 8 * p;
      _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), acc[p][t]) : acc[p][t]);
    }
}

template <int NP>
void panel_tokens(int nt, const float* w, size_t panel_stride, const float* x, int64_t xs, int64_t klen, float* y,
                  int64_t ys, bool accumulate) {
  switch (nt) {
    case 6: return panel_micro<NP, 6>(w, panel_stride, x, xs, klen, y, ys, accumulate);
    case 5: return panel_micro<NP, 5>(w, panel_stride, x, xs, klen, y, ys, accumulate);
    case 4: return panel_micro<NP, 4>(w, panel_stride, x, xs, klen, y, ys, accumulate);
    case 3: return panel_micro<NP, 3>(w, panel_stride, x, xs, klen, y, ys, accumulate);
    case 2: return panel_micro<NP, 2>(w, panel_stride, x, xs, klen, y, ys, accumulate);
    default: return panel_micro<NP, 1>(w, panel_stride, x, xs, klen, y, ys, accumulate);
  }
}

// Rows [r0, r0 + 8 * n_panels) of a several-token product on 16-bit weights L (K a multiple of 8),
// through `scratch` (8 * n_panels * K floats).
template <typename L>
void panel_gemm(const MatmulArgs& a, int64_t r0, int64_t n_panels, float* scratch) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const float*>(a.x);
  const int64_t K = a.cols, T = a.n_tokens;
  const size_t ws = static_cast<size_t>(K) * L::kBytes, panel_stride = static_cast<size_t>(8 * K);
  for (int64_t p = 0; p < n_panels; ++p) {
    const uint8_t* src = w + static_cast<size_t>(r0 + 8 * p) * ws;
    float* dst = scratch + static_cast<size_t>(p) * panel_stride;
    for (int64_t k = 0; k < K; k += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = L::load(src + i * ws, k);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + 8 * (k + i), r[i]);
    }
  }
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t klen = std::min(kKc, K - k0);
    for (int64_t t = 0; t < T; t += kPanelTokens) {
      const int nt = static_cast<int>(std::min<int64_t>(kPanelTokens, T - t));
      for (int64_t p = 0; p < n_panels; p += 2) {
        const float* wp = scratch + static_cast<size_t>(p) * panel_stride + 8 * k0;
        float* yt = a.y + t * a.rows + r0 + 8 * p;
        if (p + 1 < n_panels)
          panel_tokens<2>(nt, wp, panel_stride, x + t * K + k0, K, klen, yt, a.rows, k0 > 0);
        else
          panel_tokens<1>(nt, wp, panel_stride, x + t * K + k0, K, klen, yt, a.rows, k0 > 0);
      }
    }
  }
}

template <typename L>
void rows(const MatmulArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const float*>(a.x);
  const int64_t K = a.cols;
  const size_t ws = static_cast<size_t>(K) * L::kBytes;
  if (L::kBytes != 4 && a.n_tokens > 1 && scratch != nullptr && K % 8 == 0 && r1 - r0 >= 8) {
    const int64_t n_panels = (r1 - r0) / 8;
    panel_gemm<L>(a, r0, n_panels, scratch);
    r0 += 8 * n_panels;
    if (r0 == r1) return;
    // The rows past the last whole panel (fewer than 8): the dot-product kernels below.
  }
  if (L::kBytes != 4 && a.n_tokens > 1 && scratch != nullptr) {
    // Widen the chunk once; every token block then reuses the f32 copy.
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* src = w + r * ws;
      float* dst = scratch + (r - r0) * K;
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) _mm256_storeu_ps(dst + k, L::load(src, k));
      for (; k < K; ++k) dst[k] = L::at(src, k);
    }
    gemm<WF32>(reinterpret_cast<const uint8_t*>(scratch), static_cast<size_t>(K) * 4, x, K,
               a.n_tokens, a.y, a.rows, r0, r1);
    return;
  }
  gemm<L>(w + r0 * ws, ws, x, K, a.n_tokens, a.y, a.rows, r0, r1);
}

inline __m256i round_bf16_bits(__m256i b) {
  const __m256i keep = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  __m256i r =
      _mm256_and_si256(_mm256_add_epi32(b, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), keep);
  // NaNs keep their (quieted) payload instead of being rounded into infinities.
  __m256 bf = _mm256_castsi256_ps(b);
  __m256 nan = _mm256_cmp_ps(bf, bf, _CMP_UNORD_Q);
  __m256i quiet = _mm256_or_si256(_mm256_and_si256(b, keep), _mm256_set1_epi32(0x00400000));
  return _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(quiet), nan));
}

void round_bf16(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        out + i, _mm256_castsi256_ps(round_bf16_bits(_mm256_castps_si256(_mm256_loadu_ps(x + i)))));
  for (; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

// exp(x): x = n*ln2 + r, |r| <= ln2/2, Cephes polynomial for e^r, 2^n built in the exponent
// field. Below -87.3 the result flushes to 0 (f32 subnormals are not produced).
inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.72f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n can be 128 at the top of the range: split 2^n into two factors so neither overflows early.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i half = _mm256_srai_epi32(ni, 1);
  __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  return _mm256_andnot_ps(under, e);
}

void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  alignas(32) double part[4];
  _mm256_store_pd(part, _mm256_add_pd(s0, s1));
  double sum = (part[0] + part[1]) + (part[2] + part[3]);
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  const __m256 vs = _mm256_set1_ps(scale);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
    if (w != nullptr) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
    _mm256_storeu_ps(out + i, v);
  }
  for (; i < n; ++i) out[i] = w != nullptr ? x[i] * scale * w[i] : x[i] * scale;
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(gate + i);
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float maxv = x[0];
  int64_t i = 0;
  if (n >= 8) {
    __m256 mx = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
    alignas(32) float m8[8];
    _mm256_store_ps(m8, mx);
    for (float v : m8) maxv = std::max(maxv, v);
  }
  for (; i < n; ++i) maxv = std::max(maxv, x[i]);
  const __m256 vmax = _mm256_set1_ps(maxv);
  __m256 sum = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
    sum = _mm256_add_ps(sum, e);
    _mm256_storeu_ps(x + i, e);
  }
  float total = hsum(sum);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - maxv);
    total += x[i];
  }
  const float inv = 1.0f / total;
  const __m256 vinv = _mm256_set1_ps(inv);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
  for (; i < n; ++i) x[i] *= inv;
}

void f16_to_f32_array(const uint16_t* in, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + i, 2);
    out[i] = f16_to_f32(h);
  }
}

void f32_to_f16_array(const float* in, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// GCC contracts a multiply and an add of vector intrinsics into an FMA under its default
// -ffp-contract=fast (x86 builds do not pass =off), which would round differently from the scalar
// exp_one; Clang fuses only within one source expression, which intrinsics never are.
#if defined(__GNUC__) && !defined(__clang__)
#define KEXA_UNFUSED __attribute__((optimize("fp-contract=off")))
#else
#define KEXA_UNFUSED
#endif

// Four exp_one results at once: the same operations lane by lane (mul and add, never fused).
KEXA_UNFUSED inline __m256d exp4(__m256d v) {
  using namespace exp_detail;
  const __m256d t = _mm256_add_pd(_mm256_mul_pd(v, _mm256_set1_pd(kLog2e)), _mm256_set1_pd(kShifter));
  const __m256d k = _mm256_sub_pd(t, _mm256_set1_pd(kShifter));
  const __m256d r = _mm256_sub_pd(_mm256_sub_pd(v, _mm256_mul_pd(k, _mm256_set1_pd(kLn2Hi))),
                                  _mm256_mul_pd(k, _mm256_set1_pd(kLn2Lo)));
  __m256d p = _mm256_set1_pd(kCoef[0]);
#pragma GCC unroll 13
  for (int i = 1; i < 14; ++i) p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(kCoef[i]));
  const __m256i two_k = _mm256_slli_epi64(_mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(kExponentBias)), 52);
  const __m256d e = _mm256_mul_pd(p, _mm256_castsi256_pd(two_k));
  // v < kMinArg: 0 (NaN compares false and stays NaN, as in exp_one).
  return _mm256_andnot_pd(_mm256_cmp_pd(v, _mm256_set1_pd(kMinArg), _CMP_LT_OQ), e);
}

KEXA_UNFUSED double exp_sum(const float* x, int64_t n, double shift, double scale, double* out) {
  const __m256d vs = _mm256_set1_pd(shift), vc = _mm256_set1_pd(scale);
  __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};  // partial sums of i mod 8 = 0..3, 4..7
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256d v = _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * h)), vs), vc);
      const __m256d e = exp4(v);
      _mm256_storeu_pd(out + i + 4 * h, e);
      acc[h] = _mm256_add_pd(acc[h], e);
    }
  }
  double s[8];
  _mm256_storeu_pd(s, acc[0]);
  _mm256_storeu_pd(s + 4, acc[1]);
  for (; i < n; ++i) s[i % 8] += out[i] = exp_one(x[i], shift, scale);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Attention rows as f32 (RowsF32) or IEEE half widened as loaded (RowsF16, exact): one code for
// both, so an f16 cache's results equal the f32 forms' on the widened rows bit for bit.
struct RowsF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float at(const float* p) { return *p; }
};
struct RowsF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float at(const uint16_t* p) { return f16_to_f32(*p); }
};

template <int NC, class L>
void dot_rows_fixed(const float* q, const typename L::T* rows, int64_t stride, int64_t n, float scale,
                    float* scores) {
  __m256 qv[NC];
#pragma GCC unroll 16
  for (int c = 0; c < NC; ++c) qv[c] = _mm256_loadu_ps(q + 8 * c);
  const __m128 vs = _mm_set1_ps(scale);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const typename L::T* r = rows + (j + i) * stride;
      acc[i] = _mm256_mul_ps(qv[0], L::load(r));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c)
        acc[i] = _mm256_fmadd_ps(qv[c], L::load(r + 8 * c), acc[i]);
    }
    _mm_storeu_ps(scores + j, _mm_mul_ps(reduce4(acc[0], acc[1], acc[2], acc[3]), vs));
  }
  if (j < n) {
    // The last 1-3 keys go through the same reduction as a group of four (lane i of reduce4 sums
    // only its own input), so a key's score does not depend on where the caller's range began.
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; j + i < n; ++i) {
      const typename L::T* r = rows + (j + i) * stride;
      acc[i] = _mm256_mul_ps(qv[0], L::load(r));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c) acc[i] = _mm256_fmadd_ps(qv[c], L::load(r + 8 * c), acc[i]);
    }
    alignas(16) float v[4];
    _mm_store_ps(v, _mm_mul_ps(reduce4(acc[0], acc[1], acc[2], acc[3]), vs));
    for (int i = 0; j + i < n; ++i) scores[j + i] = v[i];
  }
}

// Head sizes other than 64 and 128 (those go through dot_rows_paired).
template <class L>
void dot_rows_one(const float* q, const typename L::T* rows, int64_t stride, int64_t n, int64_t dim,
                  float scale, float* scores) {
  for (int64_t j = 0; j < n; ++j) {
    const typename L::T* r = rows + j * stride;
    __m256 acc = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), L::load(r + d), acc);
    float s = hsum(acc);
    // Fused explicitly: both row types must round alike (x86 builds let GCC contract a * b + c).
    for (; d < dim; ++d) s = std::fma(q[d], L::at(r + d), s);
    scores[j] = s * scale;
  }
}

template <class L>
void accumulate_rows_one(const float* p, const typename L::T* rows, int64_t stride, int64_t n, int64_t dim,
                         float* out) {
  int64_t d = 0;
  // Eight accumulators (64 floats) at a time stay in registers across all rows.
  for (; d + 64 <= dim; d += 64) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) acc[c] = _mm256_loadu_ps(out + d + 8 * c);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const typename L::T* r = rows + j * stride + d;
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(pj, L::load(r + 8 * c), acc[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) _mm256_storeu_ps(out + d + 8 * c, acc[c]);
  }
  for (; d + 8 <= dim; d += 8) {
    __m256 acc = _mm256_loadu_ps(out + d);
    for (int64_t j = 0; j < n; ++j)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), L::load(rows + j * stride + d), acc);
    _mm256_storeu_ps(out + d, acc);
  }
  for (; d < dim; ++d) {
    float acc = out[d];
    for (int64_t j = 0; j < n; ++j) acc = std::fma(p[j], L::at(rows + j * stride + d), acc);
    out[d] = acc;
  }
}

// HB heads times four keys at once: each key chunk is loaded (and widened) once for both heads
// and the 4 * HB accumulators are independent FMA chains (one head's four chains wait on the FMA
// latency). Every (head, key) sum is formed and reduced exactly as dot_rows_fixed forms it for
// one head alone.
template <int NC, int HB, class L>
void dot_heads(const float* q, int64_t q_stride, const typename L::T* rows, int64_t stride, int64_t n, float scale,
               float* scores, int64_t scores_stride) {
  const __m128 vs = _mm_set1_ps(scale);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256 acc[HB][4];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      __m256 kv[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) kv[i] = L::load(rows + (j + i) * stride + 8 * c);
#pragma GCC unroll 2
      for (int h = 0; h < HB; ++h) {
        const __m256 qv = _mm256_loadu_ps(q + h * q_stride + 8 * c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
          acc[h][i] = c == 0 ? _mm256_mul_ps(qv, kv[i]) : _mm256_fmadd_ps(qv, kv[i], acc[h][i]);
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < HB; ++h)
      _mm_storeu_ps(scores + h * scores_stride + j,
                    _mm_mul_ps(reduce4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]), vs));
  }
  if (j < n)
    for (int h = 0; h < HB; ++h)
      dot_rows_fixed<NC, L>(q + h * q_stride, rows + j * stride, stride, n - j, scale, scores + h * scores_stride + j);
}

template <int NC, class L>
void dot_rows_paired(const float* q, int64_t n_q, int64_t q_stride, const typename L::T* rows, int64_t stride,
                     int64_t n, float scale, float* scores, int64_t scores_stride) {
  int64_t h = 0;
  for (; h + 2 <= n_q; h += 2)
    dot_heads<NC, 2, L>(q + h * q_stride, q_stride, rows, stride, n, scale, scores + h * scores_stride, scores_stride);
  if (h < n_q) dot_rows_fixed<NC, L>(q + h * q_stride, rows, stride, n, scale, scores + h * scores_stride);
}

// Grouped forms: heads in pairs (dot_heads) or one after another over the same rows (the
// attention hands over key blocks small enough to stay in L1 between heads).
template <class L>
void dot_rows_of(const float* q, int64_t n_q, int64_t q_stride, const typename L::T* rows, int64_t stride,
                 int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  if (dim == 64) return dot_rows_paired<8, L>(q, n_q, q_stride, rows, stride, n, scale, scores, scores_stride);
  if (dim == 128) return dot_rows_paired<16, L>(q, n_q, q_stride, rows, stride, n, scale, scores, scores_stride);
  for (int64_t h = 0; h < n_q; ++h)
    dot_rows_one<L>(q + h * q_stride, rows, stride, n, dim, scale, scores + h * scores_stride);
}

template <class L>
void accumulate_rows_of(const float* p, int64_t n_q, int64_t p_stride, const typename L::T* rows, int64_t stride,
                        int64_t n, int64_t dim, float* out, int64_t out_stride) {
  for (int64_t h = 0; h < n_q; ++h)
    accumulate_rows_one<L>(p + h * p_stride, rows, stride, n, dim, out + h * out_stride);
}

}  // namespace
}  // namespace kexa::kernels::detail

#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace kexa::kernels::detail {

const FloatKernelSet& avx2_kernels() {
  static const FloatKernelSet set = {
      rows<WF32>, rows<WF16>, rows<WBF16>,      false,    to_bf16,         round_bf16, rmsnorm,
      swiglu,     softmax,    f16_to_f32_array, f32_to_f16_array, dot_rows_of<RowsF32>, accumulate_rows_of<RowsF32>,
      dot_rows_of<RowsF16>, accumulate_rows_of<RowsF16>, exp_sum,
  };
  return set;
}

}  // namespace kexa::kernels::detail
