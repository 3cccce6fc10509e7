// Portable dot products of quantized weight rows with int8 activation blocks: the reference that
// the SIMD paths are tested against, and the path for CPUs without AVX2. Each super-block is
// decoded to plain integers first, which keeps the format details in one readable place.
#include <cstring>

#include "kernels/quant_blocks.h"

namespace kexa::kernels::quant {

namespace {

template <class Block, class Act>
const Act* token_act(const void* act, size_t stride, int t) {
  return reinterpret_cast<const Act*>(static_cast<const uint8_t*>(act) + stride * t);
}

int dot32(const int8_t* q, const int8_t* x) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += q[j] * x[j];
  return s;
}

// Decodes a 32-element block to its integer levels in element order and returns the block's
// contribution given the activation block.
template <class Decode>
void dot_blocks32(const uint8_t* w, size_t block_bytes, const void* act, size_t stride, int n_tok,
                  int64_t nb, float* out, Decode decode) {
  for (int t = 0; t < n_tok; ++t) {
    const ActBlock32* a = token_act<void, ActBlock32>(act, stride, t);
    float sum = 0.f;
    for (int64_t i = 0; i < nb; ++i) sum += decode(w + i * block_bytes, a[i]);
    out[t] = sum;
  }
}

void unpack_nibbles(const uint8_t* qs, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(qs[j] & 0xF);
    q[j + 16] = static_cast<int8_t>(qs[j] >> 4);
  }
}

void add_high_bits(const uint8_t* qh4, int8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, qh4, 4);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(q[j] | (((qh >> j) & 1u) << 4));
}

// Q4_0, Q4_1, Q5_0, Q5_1: nibbles (plus the fifth bit for Q5_*); the _0 types take their offset
// (half the range) off with the activations' sum, the _1 types add m times it.
template <class Block>
void dot_q(const uint8_t* w, const void* act, size_t stride, int n_tok, int64_t nb, float* out) {
  dot_blocks32(w, sizeof(Block), act, stride, n_tok, nb, out, [](const uint8_t* p, const ActBlock32& a) {
    const auto* b = reinterpret_cast<const Block*>(p);
    int8_t q[32];
    unpack_nibbles(b->qs, q);
    constexpr bool kFive = requires { b->qh; };
    if constexpr (kFive) add_high_bits(b->qh, q);
    if constexpr (requires { b->m; }) {
      return a.d * (half_to_float(b->d) * static_cast<float>(dot32(q, a.qs)) +
                    half_to_float(b->m) * static_cast<float>(a.sum));
    } else {
      constexpr int kHalf = kFive ? 16 : 8;
      return half_to_float(b->d) * a.d * static_cast<float>(dot32(q, a.qs) - kHalf * a.sum);
    }
  });
}

void dot_q8_0(const uint8_t* w, const void* act, size_t stride, int n_tok, int64_t nb, float* out) {
  dot_blocks32(w, sizeof(BlockQ8_0), act, stride, n_tok, nb, out,
               [](const uint8_t* p, const ActBlock32& a) {
                 const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
                 return half_to_float(b->d) * a.d * static_cast<float>(dot32(b->qs, a.qs));
               });
}

// K-quants: each super-block is decoded to levels q[256] (element order), integer scales per
// group, and a float scale pair; the dot is d * sum(sc_g * q.x) - dmin * sum(m_g * bsum_g).
struct DecodedK {
  int8_t q[256];
  int group;            // elements per scale group: 16 or 32
  int32_t sc[16];       // integer scale per group
  int32_t mn[16];       // integer minimum per group (0 for the symmetric types)
  float d, dmin;
};

void decode_q2_k(const uint8_t* p, DecodedK& k) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
  for (int e = 0; e < 256; ++e)
    k.q[e] = static_cast<int8_t>((b->qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3);
  k.group = 16;
  for (int g = 0; g < 16; ++g) {
    k.sc[g] = b->scales[g] & 0xF;
    k.mn[g] = b->scales[g] >> 4;
  }
  k.d = half_to_float(b->d);
  k.dmin = half_to_float(b->dmin);
}

void decode_q3_k(const uint8_t* p, DecodedK& k) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
  for (int e = 0; e < 256; ++e) {
    const int low = (b->qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const int high = (b->hmask[e % 32] >> (e / 32)) & 1;
    k.q[e] = static_cast<int8_t>(low - (high ? 0 : 4));
  }
  k.group = 16;
  const uint8_t* s = b->scales;
  for (int g = 0; g < 16; ++g) {
    const int low = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
    k.sc[g] = (low | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4)) - 32;
    k.mn[g] = 0;
  }
  k.d = half_to_float(b->d);
  k.dmin = 0.f;
}

void decode_k4_scales(const uint8_t* scales, DecodedK& k) {
  k.group = 32;
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, m;
    scale_min_k4(g, scales, &sc, &m);
    k.sc[g] = sc;
    k.mn[g] = m;
  }
}

// Q4_K, and Q5_K whose fifth bit of element e is bit e / 32 of qh[e % 32].
template <class Block>
void decode_k4(const uint8_t* p, DecodedK& k) {
  const auto* b = reinterpret_cast<const Block*>(p);
  for (int e = 0; e < 256; ++e) {
    int level = (b->qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF;
    if constexpr (requires { b->qh; }) level |= ((b->qh[e % 32] >> (e / 32)) & 1) << 4;
    k.q[e] = static_cast<int8_t>(level);
  }
  decode_k4_scales(b->scales, k);
  k.d = half_to_float(b->d);
  k.dmin = half_to_float(b->dmin);
}

void decode_q6_k(const uint8_t* p, DecodedK& k) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, r = e % 128, part = r / 32, l = r % 32;
    const int low = (b->ql[64 * n + l + 32 * (part & 1)] >> (4 * (part >> 1))) & 0xF;
    const int high = (b->qh[32 * n + l] >> (2 * part)) & 3;
    k.q[e] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
  k.group = 16;
  for (int g = 0; g < 16; ++g) {
    k.sc[g] = b->scales[g];
    k.mn[g] = 0;
  }
  k.d = half_to_float(b->d);
  k.dmin = 0.f;
}

template <void (*Decode)(const uint8_t*, DecodedK&), size_t kBytes>
void dot_k(const uint8_t* w, const void* act, size_t stride, int n_tok, int64_t nb, float* out) {
  for (int t = 0; t < n_tok; ++t) out[t] = 0.f;
  DecodedK k;
  for (int64_t i = 0; i < nb; ++i) {
    Decode(w + i * kBytes, k);
    const int n_groups = 256 / k.group;
    for (int t = 0; t < n_tok; ++t) {
      const ActBlock256& a = token_act<void, ActBlock256>(act, stride, t)[i];
      int64_t isum = 0, msum = 0;
      for (int g = 0; g < n_groups; ++g) {
        int s = 0;
        for (int e = g * k.group; e < (g + 1) * k.group; ++e) s += k.q[e] * a.qs[e];
        isum += static_cast<int64_t>(k.sc[g]) * s;
        int bs = 0;
        for (int h = g * k.group / 16; h < (g + 1) * k.group / 16; ++h) bs += a.bsums[h];
        msum += static_cast<int64_t>(k.mn[g]) * bs;
      }
      out[t] += a.d * (k.d * static_cast<float>(isum) - k.dmin * static_cast<float>(msum));
    }
  }
}

}  // namespace

const DotKernels& portable_dots() {
  static const DotKernels k = {
      .q4_0 = dot_q<BlockQ4_0>,
      .q4_1 = dot_q<BlockQ4_1>,
      .q5_0 = dot_q<BlockQ5_0>,
      .q5_1 = dot_q<BlockQ5_1>,
      .q8_0 = dot_q8_0,
      .q2_k = dot_k<decode_q2_k, sizeof(BlockQ2_K)>,
      .q3_k = dot_k<decode_q3_k, sizeof(BlockQ3_K)>,
      .q4_k = dot_k<decode_k4<BlockQ4_K>, sizeof(BlockQ4_K)>,
      .q5_k = dot_k<decode_k4<BlockQ5_K>, sizeof(BlockQ5_K)>,
      .q6_k = dot_k<decode_q6_k, sizeof(BlockQ6_K)>,
  };
  return k;
}

}  // namespace kexa::kernels::quant
