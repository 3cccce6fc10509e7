// Quantized dot kernels for 64-bit Arm, one table per level (see quant_neon.inc), built only for
// aarch64. Each level's functions are compiled for its instructions by a target region, so the
// rest of the binary stays plain Armv8-A; neon_dots() is only called for a level the CPU has
// (dots_for in quant_matmul.cpp, after path_supported()).
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

namespace kexa::kernels::quant {

namespace neon0 {
#define KEXA_NEON_LEVEL 0
#include "kernels/quant_neon.inc"
#undef KEXA_NEON_LEVEL
}  // namespace neon0

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
namespace neon1 {
#define KEXA_NEON_LEVEL 1
#include "kernels/quant_neon.inc"
#undef KEXA_NEON_LEVEL
}  // namespace neon1
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod,i8mm"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")
#endif
namespace neon2 {
#define KEXA_NEON_LEVEL 2
#include "kernels/quant_neon.inc"
#undef KEXA_NEON_LEVEL
}  // namespace neon2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const DotKernels& neon_dots(int level) {
  // Separate statics: a level's table is built (by code of that level) only once it is asked for.
  if (level >= 2) {
    static const DotKernels k2 = neon2::table();
    return k2;
  }
  if (level == 1) {
    static const DotKernels k1 = neon1::table();
    return k1;
  }
  static const DotKernels k0 = neon0::table();
  return k0;
}

}  // namespace kexa::kernels::quant
