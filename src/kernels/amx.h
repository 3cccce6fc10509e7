// Internal to src/kernels: Intel AMX (Advanced Matrix Extensions) tile kernels for prefill.
//
// A tile multiply-accumulate does a 16 x 16 x 32 bf16 product (or 16 x 16 x 64 int8) in one
// instruction, several times the arithmetic of AVX-512 per cycle, so products of many tokens
// (prompt processing, batched decode) stop being bound by the vector units. Tiles hold up to
// 16 rows of 64 bytes; the right-hand operand is in "VNNI" order (row i holds the pairs, or
// quads, of element i of every output column), which is what the activation packers produce.
// The weights are the left-hand operand, loaded straight from the mapped file with a row stride,
// so no weight is rearranged for AMX; the kernels transpose their 16 x 16 results into y.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kexa::kernels::amx {

// Whether the AMX kernels may run: the CPU has AMX-TILE, AMX-BF16 and AMX-INT8, the kernel let
// this process use the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), and KEXA_AMX is not "0".
bool available();

// Tokens are handled in tiles of 16; the packed activations of a token tile for one 32-value
// step of k take one 1 KiB tile.
constexpr int64_t kTileTokens = 16;
constexpr int64_t kBf16Step = 32;

// Elements (uint16) of the packed activations of n_tokens tokens with `cols` values each
// (cols a multiple of kBf16Step); tokens past n_tokens are zero.
size_t bf16_packed_elems(int64_t n_tokens, int64_t cols);
// x: [n_tokens][cols] bf16 bits -> out (bf16_packed_elems): token tile b, step s, pair i,
// token t, half j at ((b * steps + s) * 16 + i) * 32 + 2 t + j, holding x[16 b + t][32 s + 2 i + j].
void bf16_pack_activations(const uint16_t* x, int64_t n_tokens, int64_t cols, uint16_t* out);

// y[t * y_stride + r] = sum_k W[r][k] * x[t][k] for rows r0 <= r < r1 and t < n_tokens. W is
// bf16, row-major with `cols` values per row (cols a multiple of kBf16Step), r0 and r1 are
// multiples of 16, x_packed comes from bf16_pack_activations. Call only when available().
void bf16_rows(const uint8_t* w, int64_t cols, const uint16_t* x_packed, int64_t n_tokens,
               int64_t r0, int64_t r1, float* y, int64_t y_stride);

}  // namespace kexa::kernels::amx
