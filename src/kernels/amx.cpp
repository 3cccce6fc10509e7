// AMX tile kernels (see amx.h). Tile registers: C accumulators tmm0..3 (rows tile a x tokens tile
// b at tmm(2a + b)), weight tiles tmm4, tmm5, activation tiles tmm6, tmm7.
#include "kernels/amx.h"

#include "kernels/kernels.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define KEXA_HAVE_AMX 1
#endif

namespace kexa::kernels::amx {

#if KEXA_HAVE_AMX

namespace {

bool cpu_has_amx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool tile = (edx >> 24) & 1u, bf16 = (edx >> 22) & 1u, int8 = (edx >> 25) & 1u;
  // The result transposes use AVX-512.
  return tile && bf16 && int8 && path_supported(CpuPath::Avx512);
}

// Linux hands out the 8 KiB tile state only to processes that ask for it (kernel 5.16+); without
// it the first tile instruction raises SIGILL.
bool request_tile_state() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

bool detect() {
  const char* env = std::getenv("KEXA_AMX");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  return cpu_has_amx() && request_tile_state();
}

}  // namespace

bool available() {
  static const bool yes = detect();
  return yes;
}

#else

bool available() { return false; }

#endif

size_t bf16_packed_elems(int64_t n_tokens, int64_t cols) {
  const int64_t tiles = (n_tokens + kTileTokens - 1) / kTileTokens;
  return static_cast<size_t>(tiles * kTileTokens * cols);
}

}  // namespace kexa::kernels::amx

#if KEXA_HAVE_AMX

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16,amx-int8"))), apply_to = function)
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16,amx-int8")
#endif
#include <immintrin.h>

namespace kexa::kernels::amx {

namespace {

// The 64-byte LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64);

// Every tile 16 rows x 64 bytes. Configured per call: the tile state belongs to the thread, and
// releasing it at the end keeps context switches from saving 8 KiB per thread.
class TileScope {
 public:
  TileScope() {
    TileConfig config{};
    config.palette = 1;
    for (int t = 0; t < 8; ++t) {
      config.colsb[t] = 64;
      config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

// Transposes a 16 x 16 block of 32-bit values (rows `in_stride` elements apart) and writes the
// first `n_out` rows of the transpose (`out_stride` elements apart). Pure data movement, so it
// serves floats and bf16 pairs alike.
void transpose16(const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t n_out) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * in_stride);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + m] holds, in 128-bit lane j, column 4j + m of rows 4g .. 4g+3.
  for (int g = 0; g < 16; g += 4) {
    const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
    const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
    r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 v = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);
    const __m512 w = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    const __m512 w2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xDD);
    t[m] = _mm512_shuffle_f32x4(v, v2, 0x88);       // column m
    t[8 + m] = _mm512_shuffle_f32x4(v, v2, 0xDD);   // column 8 + m
    t[4 + m] = _mm512_shuffle_f32x4(w, w2, 0x88);   // column 4 + m
    t[12 + m] = _mm512_shuffle_f32x4(w, w2, 0xDD);  // column 12 + m
  }
  for (int64_t c = 0; c < n_out; ++c) _mm512_storeu_ps(out + c * out_stride, t[c]);
}

// One block of NA row tiles x NB token tiles over all k: C tiles to `c` as [a][b][16][16].
template <int NA, int NB>
void bf16_block(const uint8_t* w, size_t row_bytes, const uint8_t* x, size_t x_tile_stride,
                int64_t steps, float* c) {
  _tile_zero(0);
  if constexpr (NB == 2) _tile_zero(1);
  if constexpr (NA == 2) _tile_zero(2);
  if constexpr (NA == 2 && NB == 2) _tile_zero(3);
  const uint8_t* w1 = w + 16 * row_bytes;
  const uint8_t* x1 = x + x_tile_stride;
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, w + s * 64, static_cast<long>(row_bytes));
    _tile_loadd(6, x + s * 1024, 64);
    if constexpr (NB == 2) _tile_loadd(7, x1 + s * 1024, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NA == 2) {
      _tile_loadd(5, w1 + s * 64, static_cast<long>(row_bytes));
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NB == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  // Tile (a, b) goes to c + (a * NB + b) * 256.
  _tile_stored(0, c, 64);
  if constexpr (NB == 2) _tile_stored(1, c + 256, 64);
  if constexpr (NA == 2) _tile_stored(2, c + NB * 256, 64);
  if constexpr (NA == 2 && NB == 2) _tile_stored(3, c + 768, 64);
}

}  // namespace

void bf16_pack_activations(const uint16_t* x, int64_t n_tokens, int64_t cols, uint16_t* out) {
  const int64_t steps = cols / kBf16Step;
  const int64_t tiles = (n_tokens + kTileTokens - 1) / kTileTokens;
  alignas(64) uint32_t block[16 * 16];
  for (int64_t b = 0; b < tiles; ++b) {
    const int64_t t0 = b * kTileTokens, nt = n_tokens - t0 < 16 ? n_tokens - t0 : 16;
    for (int64_t s = 0; s < steps; ++s) {
      // Rows = tokens, columns = the 16 pairs of this step; the tile wants pairs x tokens.
      std::memset(block, 0, sizeof(block));
      for (int64_t t = 0; t < nt; ++t)
        std::memcpy(block + t * 16, x + (t0 + t) * cols + s * kBf16Step, 64);
      transpose16(reinterpret_cast<const float*>(block), 16,
                  reinterpret_cast<float*>(out + (b * steps + s) * 512), 16, 16);
    }
  }
}

void bf16_rows(const uint8_t* w, int64_t cols, const uint16_t* x_packed, int64_t n_tokens,
               int64_t r0, int64_t r1, float* y, int64_t y_stride) {
  const TileScope tiles;
  const size_t row_bytes = static_cast<size_t>(cols) * 2;
  const int64_t steps = cols / kBf16Step;
  const size_t x_tile_stride = static_cast<size_t>(steps) * 1024;
  const int64_t token_tiles = (n_tokens + kTileTokens - 1) / kTileTokens;
  const auto* x = reinterpret_cast<const uint8_t*>(x_packed);
  alignas(64) float c[4 * 256];
  // Token tiles outside, rows inside: the caller's row range (its weights) and two token tiles'
  // activations both stay in L2 while every pair meets.
  for (int64_t b = 0; b < token_tiles; b += 2) {
    const int nb = token_tiles - b >= 2 ? 2 : 1;
    const uint8_t* xb = x + static_cast<size_t>(b) * x_tile_stride;
    for (int64_t r = r0; r < r1; r += 32) {
      const int na = r1 - r >= 32 ? 2 : 1;
      const uint8_t* wr = w + static_cast<size_t>(r) * row_bytes;
      if (na == 2 && nb == 2) bf16_block<2, 2>(wr, row_bytes, xb, x_tile_stride, steps, c);
      else if (na == 2) bf16_block<2, 1>(wr, row_bytes, xb, x_tile_stride, steps, c);
      else if (nb == 2) bf16_block<1, 2>(wr, row_bytes, xb, x_tile_stride, steps, c);
      else bf16_block<1, 1>(wr, row_bytes, xb, x_tile_stride, steps, c);
      for (int i = 0; i < na; ++i)
        for (int j = 0; j < nb; ++j) {
          const int64_t t0 = (b + j) * kTileTokens;
          const int64_t nt = n_tokens - t0 < 16 ? n_tokens - t0 : 16;
          transpose16(c + (i * nb + j) * 256, 16, y + t0 * y_stride + r + 16 * i, y_stride, nt);
        }
    }
  }
}

}  // namespace kexa::kernels::amx

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#pragma GCC diagnostic pop
#endif

#else  // no AMX on this platform: available() is false, so these are never called

namespace kexa::kernels::amx {
void bf16_pack_activations(const uint16_t*, int64_t, int64_t, uint16_t*) {}
void bf16_rows(const uint8_t*, int64_t, const uint16_t*, int64_t, int64_t, int64_t, float*, int64_t) {}
}  // namespace kexa::kernels::amx

#endif
