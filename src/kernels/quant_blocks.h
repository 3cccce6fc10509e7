// Internal to src/kernels: ggml's block layouts for the quantized types (byte-for-byte what a GGUF
// file holds), the int8 activation blocks the dot products use, and the per-instruction-set dot
// kernel tables. Each SIMD file compiles with its own target attribute, so only plain data and
// function pointers cross file boundaries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "formats/tensor.h"
#include "util/half.h"

namespace kexa::kernels::quant {

constexpr int kQK = 32;    // elements per block of Q4_0 ... Q8_0
constexpr int kQKK = 256;  // elements per super-block of the K-quants

// Half floats are kept as raw bits: the structs must match the file layout exactly.
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Activations of one token for the 32-element types: x ~= d * qs, sum = sum(qs).
struct ActBlock32 {
  int8_t qs[32];
  float d;
  int32_t sum;
};

// Activations of one token for the K-quants: one scale per 256, sums per 16 for the offsets and
// minimums of the weight formats.
struct ActBlock256 {
  int8_t qs[256];
  float d;
  int16_t bsums[16];
};

// The quantizers' names for util/half.h's conversions (float -> half as F16C's vcvtps2ph).
inline float half_to_float(uint16_t h) { return f16_to_f32(h); }
inline uint16_t float_to_half(float f) { return f32_to_f16(f); }

// Round to nearest, ties to even, for |v| < 2^22 (the quantizers' rounding).
inline int nearest_int(float v) {
  float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and minimum j (0..7) of a Q4_K / Q5_K super-block.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Activation quantizers (bit for bit the same on every path, so results do not depend on the
// path's rounding): the AVX-512 / AVX2 versions on their paths, else the scalar references.
void quantize_act32(const float* x, int64_t n, ActBlock32* out);
void quantize_act256(const float* x, int64_t n, ActBlock256* out);
void quantize_act32_ref(const float* x, int64_t n, ActBlock32* out);
void quantize_act256_ref(const float* x, int64_t n, ActBlock256* out);
// Only valid to call when the CPU has AVX-512.
void quantize_act32_avx512(const float* x, int64_t n, ActBlock32* out);
void quantize_act256_avx512(const float* x, int64_t n, ActBlock256* out);
// Only valid to call when the CPU has AVX2 (+FMA, F16C).
void quantize_act32_avx2(const float* x, int64_t n, ActBlock32* out);
void quantize_act256_avx2(const float* x, int64_t n, ActBlock256* out);

// Which activation format a weight type dots with.
enum class ActKind { Block32, Block256 };
ActKind act_kind(DType type);

// Dot products of one weight row with n_tok (1..kMaxTokens) activation rows:
// out[t] = sum over the row of w * x_t. `act` points at token 0's first block; token t's blocks
// start act_stride bytes later per token.
constexpr int kMaxTokens = 4;
using RowDotFn = void (*)(const uint8_t* w, const void* act, size_t act_stride, int n_tok,
                          int64_t n_blocks, float* out);

struct DotKernels {
  RowDotFn q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k;
};

const DotKernels& portable_dots();
// Only valid to call when the CPU supports the instruction set (AVX2+FMA+F16C; AVX-512 with VNNI).
const DotKernels& avx2_dots();
const DotKernels& avx512_dots();
// Arm: Advanced SIMD (level 0), + dot product sdot (1), + int8 matrix multiply smmla (2). Only
// valid to call when the CPU has the level's instructions. Their integer sums are exact and
// their float arithmetic is portable_dots()'s, operation for operation, so every level returns
// portable_dots()'s results bit for bit (the build keeps the compiler from fusing multiply-adds
// on aarch64 for the same reason).
const DotKernels& neon_dots(int level);

inline RowDotFn pick(const DotKernels& k, DType type) {
  switch (type) {
    case DType::Q4_0: return k.q4_0;
    case DType::Q4_1: return k.q4_1;
    case DType::Q5_0: return k.q5_0;
    case DType::Q5_1: return k.q5_1;
    case DType::Q8_0: return k.q8_0;
    case DType::Q2_K: return k.q2_k;
    case DType::Q3_K: return k.q3_k;
    case DType::Q4_K: return k.q4_k;
    case DType::Q5_K: return k.q5_k;
    case DType::Q6_K: return k.q6_k;
    default: return nullptr;
  }
}

}  // namespace kexa::kernels::quant
