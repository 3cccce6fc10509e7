// Internal to src/kernels: the packed block structs (one block column of a 16-row group; layouts
// described in packed.h) and their prefetch, shared by the packer and the packed kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/packed.h"
#include "kernels/quant_blocks.h"

namespace kexa::kernels::packed {

constexpr int R = kPackRows;

struct PackedQ8_0 {
  uint16_t d[R];
  uint8_t q[8][64];
};
struct PackedQ4_0 {  // qs[s]: step s in the low nibbles, step s + 4 in the high ones
  uint16_t d[R];
  uint8_t qs[4][64];
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
// Packed weights are read in one forward stream; asking for every line of a block 4 KiB ahead,
// into L2, keeps DRAM busy (hardware prefetchers stop at page boundaries; on Intel server cores
// they alone reach about half the DRAM rate) and lets an 8-token tile compute while its data
// arrives (AVX-512, output projection with 8 tokens: 8.2 -> 5.6 ms on 2 threads). Every line,
// headers included: a block's scales left to demand misses cost Q4_K / Q6_K decode about a fifth
// of the DRAM rate. (Locality 2 = prefetcht1 on x86.)
constexpr int kPrefetchBytes = 4096;
inline void prefetch_block_ahead(const void* block, size_t bytes) {
  const auto begin = reinterpret_cast<uintptr_t>(block) & ~uintptr_t{63};
  const auto end = reinterpret_cast<uintptr_t>(block) + bytes;
  for (uintptr_t line = begin; line < end; line += 64)
    __builtin_prefetch(reinterpret_cast<const char*>(line + kPrefetchBytes), 0, 2);
}

static_assert(sizeof(PackedQ8_0) == R * sizeof(quant::BlockQ8_0));
static_assert(sizeof(PackedQ4_0) == R * sizeof(quant::BlockQ4_0));
static_assert(sizeof(PackedQ4_K) == R * sizeof(quant::BlockQ4_K));
static_assert(sizeof(PackedQ5_K) == R * sizeof(quant::BlockQ5_K));
static_assert(sizeof(PackedQ6_K) == R * sizeof(quant::BlockQ6_K));

}  // namespace kexa::kernels::packed
