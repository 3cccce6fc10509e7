// Quantized dot kernels compiled for AVX2 + FMA + F16C (maddubs/madd int8 dots). Only called when the CPU
// has these instructions (see dots_for in quant_matmul.cpp); the body is shared with the other
// instruction-set file through quant_simd.inc.
#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/avx2_begin.inc"

namespace kexa::kernels::quant::avx2_impl {
#define KEXA_QUANT_VNNI 0
#include "kernels/quant_simd.inc"
#undef KEXA_QUANT_VNNI
}  // namespace kexa::kernels::quant::avx2_impl

namespace kexa::kernels::quant {
namespace {
// nearest_int of every lane: round to nearest even, and 0 for NaN (a NaN activation, or inf
// times a zero scale) where the conversion instruction would give INT_MIN.
inline __m256i nearest(__m256 v) {
  return _mm256_and_si256(_mm256_cvtps_epi32(v), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_ORD_Q)));
}
inline __m256 abs8(__m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
inline int32_t hsum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1)));
}
// 32 int32 lanes in [-128, 127] (so the saturating packs are exact) -> 32 bytes in order.
inline void store_bytes32(int8_t* out, const __m256i (&q)[4]) {
  const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}
}  // namespace

// Same arithmetic as the references, lane by lane (max(|x|, m) keeps m when x is NaN, as
// std::max(m, |x|) does; every product is rounded once, as there).
void quantize_act32_avx2(const float* x, int64_t n, ActBlock32* out) {
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int c = 0; c < 4; ++c) m = _mm256_max_ps(abs8(v[c] = _mm256_loadu_ps(x + 8 * c)), m);
    const float amax = hmax8(m);
    const float d = amax / 127.f;
    const float id = amax > 0.f ? 127.f / amax : 0.f;
    __m256i q[4];
    for (int c = 0; c < 4; ++c) q[c] = nearest(_mm256_mul_ps(v[c], _mm256_set1_ps(id)));
    store_bytes32(out[i].qs, q);
    out[i].d = half_to_float(float_to_half(d));
    out[i].sum = hsum8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  }
}

void quantize_act256_avx2(const float* x, int64_t n, ActBlock256* out) {
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    __m256 m = _mm256_setzero_ps();
    for (int c = 0; c < 32; ++c) m = _mm256_max_ps(abs8(_mm256_loadu_ps(x + 8 * c)), m);
    const float amax = hmax8(m);
    float max = 0.f;
    if (amax > 0.f) {
      for (int c = 0; c < 32; ++c) {
        const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + 8 * c)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
        if (hit != 0) {
          max = x[8 * c + __builtin_ctz(static_cast<unsigned>(hit))];
          break;
        }
      }
    }
    const float iscale = amax > 0.f ? -127.f / max : 0.f;
    out[i].d = amax > 0.f ? 1 / iscale : 0.f;
    const __m256 vs = _mm256_set1_ps(iscale);
    for (int g = 0; g < 16; g += 2) {
      __m256i q[4];
      for (int c = 0; c < 4; ++c)
        q[c] = _mm256_min_epi32(nearest(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 16 * g + 8 * c))), _mm256_set1_epi32(127));
      store_bytes32(out[i].qs + 16 * g, q);
      out[i].bsums[g] = static_cast<int16_t>(hsum8(_mm256_add_epi32(q[0], q[1])));
      out[i].bsums[g + 1] = static_cast<int16_t>(hsum8(_mm256_add_epi32(q[2], q[3])));
    }
  }
}
}  // namespace kexa::kernels::quant

#include "kernels/avx2_end.inc"

namespace kexa::kernels::quant {
const DotKernels& avx2_dots() { return avx2_impl::simd_table(); }
}  // namespace kexa::kernels::quant

#else  // not x86-64: the path is never selected; keep the symbol for the dispatcher.

namespace kexa::kernels::quant {
const DotKernels& avx2_dots() { return portable_dots(); }
void quantize_act32_avx2(const float* x, int64_t n, ActBlock32* out) { quantize_act32_ref(x, n, out); }
void quantize_act256_avx2(const float* x, int64_t n, ActBlock256* out) { quantize_act256_ref(x, n, out); }
}  // namespace kexa::kernels::quant

#endif
