// Quantized dot kernels compiled for AVX-512 with VNNI (vpdpbusd int8 dots on 256-bit vectors). Only called when the CPU
// has these instructions (see dots_for in quant_matmul.cpp); the body is shared with the other
// instruction-set file through quant_simd.inc.
#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/avx512_vnni_begin.inc"

namespace kexa::kernels::quant::avx512_impl {
#define KEXA_QUANT_VNNI 1
#include "kernels/quant_simd.inc"
#undef KEXA_QUANT_VNNI
}  // namespace kexa::kernels::quant::avx512_impl

namespace kexa::kernels::quant {

// The activation quantizers with the scalar reference's arithmetic (the same IEEE products,
// round-to-nearest-even like nearest_int, the first signed extreme for Q8_K), so their blocks
// are bit for bit the reference's: prefill quantizes every token before each matmul, and the
// scalar loops took ~8% of a Q4_K_M prompt.
namespace {
// nearest_int of every lane: round to nearest even, and 0 for NaN (a NaN activation, or inf
// times a zero scale) where the conversion instruction would give INT_MIN.
inline __m512i nearest(__m512 v) {
  return _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
}
}  // namespace

void quantize_act32_avx512(const float* x, int64_t n, ActBlock32* out) {
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    // max(|x|, m) keeps m when x is NaN, as std::max(m, |x|) does.
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(b), _mm512_max_ps(_mm512_abs_ps(a), _mm512_setzero_ps())));
    const float d = amax / 127.f;
    const float id = amax > 0.f ? 127.f / amax : 0.f;
    const __m512i qa = nearest(_mm512_mul_ps(a, _mm512_set1_ps(id)));
    const __m512i qb = nearest(_mm512_mul_ps(b, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].qs), _mm512_cvtepi32_epi8(qa));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].qs + 16), _mm512_cvtepi32_epi8(qb));
    out[i].d = half_to_float(float_to_half(d));
    out[i].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
  }
}

void quantize_act256_avx512(const float* x, int64_t n, ActBlock256* out) {
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    __m512 m = _mm512_setzero_ps();
    for (int c = 0; c < 16; ++c) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)), m);
    const float amax = _mm512_reduce_max_ps(m);
    float max = 0.f;
    if (amax > 0.f) {
      for (int c = 0; c < 16; ++c) {
        const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)),
                                                 _mm512_set1_ps(amax), _CMP_EQ_OQ);
        if (hit != 0) {
          max = x[16 * c + __builtin_ctz(hit)];
          break;
        }
      }
    }
    const float iscale = amax > 0.f ? -127.f / max : 0.f;
    out[i].d = amax > 0.f ? 1 / iscale : 0.f;
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int g = 0; g < 16; ++g) {
      __m512i q = nearest(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * g)));
      q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].qs + 16 * g), _mm512_cvtepi32_epi8(q));
      out[i].bsums[g] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
  }
}

}  // namespace kexa::kernels::quant

#include "kernels/avx512_vnni_end.inc"

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return avx512_impl::simd_table(); }
}  // namespace kexa::kernels::quant

#else  // not x86-64: the path is never selected; keep the symbol for the dispatcher.

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return portable_dots(); }
namespace {
// nearest_int of every lane: round to nearest even, and 0 for NaN (a NaN activation, or inf
// times a zero scale) where the conversion instruction would give INT_MIN.
inline __m512i nearest(__m512 v) {
  return _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
}
}  // namespace

void quantize_act32_avx512(const float* x, int64_t n, ActBlock32* out) { quantize_act32_ref(x, n, out); }
void quantize_act256_avx512(const float* x, int64_t n, ActBlock256* out) { quantize_act256_ref(x, n, out); }
}  // namespace kexa::kernels::quant

#endif
