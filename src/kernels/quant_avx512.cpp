// Quantized dot kernels compiled for AVX-512 with VNNI (vpdpbusd int8 dots on 256-bit vectors). Only called when the CPU
// has these instructions (see dots_for in quant_matmul.cpp); the body is shared with the other
// instruction-set file through quant_simd.inc.
#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

#if defined(__x86_64__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))), apply_to = function)
#else
// GCC 12 reports its own _mm512_undefined_* placeholders as uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#endif

namespace kexa::kernels::quant::avx512_impl {
#define KEXA_QUANT_VNNI 1
#include "kernels/quant_simd.inc"
#undef KEXA_QUANT_VNNI
}  // namespace kexa::kernels::quant::avx512_impl

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#pragma GCC diagnostic pop
#endif

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return avx512_impl::simd_table(); }
}  // namespace kexa::kernels::quant

#else  // not x86-64: the path is never selected; keep the symbol for the dispatcher.

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return portable_dots(); }
}  // namespace kexa::kernels::quant

#endif
