// Quantized dot kernels compiled for AVX2 + FMA + F16C (maddubs/madd int8 dots). Only called when the CPU
// has these instructions (see dots_for in quant_matmul.cpp); the body is shared with the other
// instruction-set file through quant_simd.inc.
#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

#if defined(__x86_64__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace kexa::kernels::quant::avx2_impl {
#define KEXA_QUANT_VNNI 0
#include "kernels/quant_simd.inc"
#undef KEXA_QUANT_VNNI
}  // namespace kexa::kernels::quant::avx2_impl

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace kexa::kernels::quant {
const DotKernels& avx2_dots() { return avx2_impl::simd_table(); }
}  // namespace kexa::kernels::quant

#else  // not x86-64: the path is never selected; keep the symbol for the dispatcher.

namespace kexa::kernels::quant {
const DotKernels& avx2_dots() { return portable_dots(); }
}  // namespace kexa::kernels::quant

#endif
