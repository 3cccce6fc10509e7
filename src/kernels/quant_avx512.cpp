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

#include "kernels/avx512_vnni_end.inc"

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return avx512_impl::simd_table(); }
}  // namespace kexa::kernels::quant

#else  // not x86-64: the path is never selected; keep the symbol for the dispatcher.

namespace kexa::kernels::quant {
const DotKernels& avx512_dots() { return portable_dots(); }
}  // namespace kexa::kernels::quant

#endif
