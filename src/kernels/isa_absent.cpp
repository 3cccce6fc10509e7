// The entry points of the other architecture's kernel files, which the build leaves out (their
// intrinsics do not compile here): the dispatchers name them in their switches, but
// path_supported() never lets a path of another architecture run, so these are never reached.
// When an instruction-set file gains an entry point that shared code calls, it gets a stand-in
// here (the aarch64 CI stage fails to link otherwise).
#include "kernels/float_kernels.h"
#include "kernels/packed.h"
#include "kernels/quant_blocks.h"
#include "util/error.h"

#if !defined(__x86_64__)

namespace kexa::kernels {
namespace detail {
const FloatKernelSet& avx2_kernels() { return portable_kernels(); }
const FloatKernelSet& avx512_kernels() { return portable_kernels(); }
}  // namespace detail

namespace quant {
const DotKernels& avx2_dots() { return portable_dots(); }
const DotKernels& avx512_dots() { return portable_dots(); }
void quantize_act32_avx512(const float* x, int64_t n, ActBlock32* out) { quantize_act32_ref(x, n, out); }
void quantize_act256_avx512(const float* x, int64_t n, ActBlock256* out) { quantize_act256_ref(x, n, out); }
void quantize_act32_avx2(const float* x, int64_t n, ActBlock32* out) { quantize_act32_ref(x, n, out); }
void quantize_act256_avx2(const float* x, int64_t n, ActBlock256* out) { quantize_act256_ref(x, n, out); }
}  // namespace quant

bool packed_kernels_supported() { return false; }
void packed_matmul_groups(const Weight& W, const uint8_t*, size_t, int64_t, int64_t, int64_t, float*, int64_t) {
  fail("packed matmul: ", W.name, ": packed kernels need x86-64 AVX-512");
}
void packed_matmul_groups_avx2(const Weight& W, const uint8_t*, size_t, int64_t, int64_t, int64_t, float*,
                               int64_t) {
  fail("packed matmul: ", W.name, ": packed kernels need x86-64 AVX2");
}
}  // namespace kexa::kernels

#endif

#if !defined(__aarch64__)

namespace kexa::kernels {
namespace detail {
const FloatKernelSet& neon_kernels(bool) { return portable_kernels(); }
}  // namespace detail
namespace quant {
const DotKernels& neon_dots(int) { return portable_dots(); }
}  // namespace quant
}  // namespace kexa::kernels

#endif
