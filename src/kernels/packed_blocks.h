// Internal to src/kernels: the packed block structs (one block column of a 16-row group; layouts
// described in packed.h), shared by the packer and the AVX-512 kernels.
#pragma once

#include <cstdint>

#include "kernels/packed.h"
#include "kernels/quant_blocks.h"

namespace kexa::kernels::packed {

constexpr int R = kPackRows;

struct PackedQ8_0 {
  uint16_t d[R];
  uint8_t q[8][64];
};
struct PackedQ4_K {
  uint16_t d[R], dmin[R];
  uint8_t scales[12][R];
  struct Sub {  // sub-block j: qs[q] holds step 8j+q (low nibbles) and 8j+q+4 (high)
    uint8_t qs[4][64];
  } sub[8];
};
struct PackedQ5_K {
  uint16_t d[R], dmin[R];
  uint8_t scales[12][R];
  struct Sub {  // as Q4_K, and bit s of qh's byte r*4+i = fifth bit of step 8j+s's value i; each
    uint8_t qs[4][64];  // sub-block's bytes together, so the weights are one forward stream
    uint8_t qh[64];
  } sub[8];
};
struct PackedQ6_K {
  uint16_t d[R];
  int8_t scales[16][R];
  struct Group {  // 16 values: read in order, so the hardware prefetcher sees one forward stream
    uint8_t ql[2][64];
    uint8_t qh[64];
  } g[16];
};
static_assert(sizeof(PackedQ8_0) == R * sizeof(quant::BlockQ8_0));
static_assert(sizeof(PackedQ4_K) == R * sizeof(quant::BlockQ4_K));
static_assert(sizeof(PackedQ5_K) == R * sizeof(quant::BlockQ5_K));
static_assert(sizeof(PackedQ6_K) == R * sizeof(quant::BlockQ6_K));

}  // namespace kexa::kernels::packed
