// Dequantization and reference quantization of ggml's block formats. Dequantization reproduces
// llama.cpp's values bit for bit (same float operations in the same order). Quantization follows
// the same non-imatrix search as llama.cpp's reference quantizers (nearest-int rounding, the
// weighted least-squares scale searches for the K-quants), so files written by kexa match files
// written by llama-quantize.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <optional>

#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"

namespace kexa::kernels {

using namespace quant;

namespace {

constexpr float kGroupMaxEps = 1e-15f;

// ---------------------------------------------------------------- dequantization

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_0, Q4_1, Q5_0 and Q5_1: nibbles (with a fifth bit from qh for Q5_*); the _0 types are
// offset by half their range, the _1 types add the block's minimum m.
template <class Block>
void deq_32(const Block* b, int64_t nb, float* y) {
  constexpr bool kFive = requires(const Block& k) { k.qh; };
  constexpr bool kMin = requires(const Block& k) { k.m; };
  constexpr int kHalf = kFive ? 16 : 8;
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = half_to_float(b[i].d);
    uint32_t qh = 0;
    if constexpr (kFive) qh = load_u32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      int v0 = b[i].qs[j] & 0x0F, v1 = b[i].qs[j] >> 4;
      if constexpr (kFive) {
        v0 |= static_cast<int>((qh >> j) & 1u) << 4;
        v1 |= static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      }
      if constexpr (kMin) {
        const float m = half_to_float(b[i].m);
        y[j] = static_cast<float>(v0) * d + m;
        y[j + 16] = static_cast<float>(v1) * d + m;
      } else {
        y[j] = static_cast<float>(v0 - kHalf) * d;
        y[j + 16] = static_cast<float>(v1 - kHalf) * d;
      }
    }
  }
}

void deq_q8_0(const BlockQ8_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = half_to_float(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void deq_q2_k(const BlockQ2_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d), dmin = half_to_float(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l)
            *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// The 16 signed 6-bit scales of a Q3_K super-block.
void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

void deq_q3_k(const BlockQ3_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d_all = half_to_float(b[i].d);
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    const uint8_t* q = b[i].qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(sc[is++]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int v = ((q[l] >> shift) & 3) - ((b[i].hmask[l] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

// Q4_K, and Q5_K whose fifth bits come from qh (bit 2k of qh[l] for sub-block 2k, 2k+1 for 2k+1).
template <class Block>
void deq_k4(const Block* b, int64_t nb, float* y) {
  constexpr bool kFive = requires(const Block& k) { k.qh; };
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d), dmin = half_to_float(b[i].dmin);
    const uint8_t* q = b[i].qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(j, b[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      scale_min_k4(j + 1, b[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        int v = q[l] & 0xF;
        if constexpr (kFive) v += (b[i].qh[l] & u1) ? 16 : 0;
        *y++ = d1 * static_cast<float>(v) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        int v = q[l] >> 4;
        if constexpr (kFive) v += (b[i].qh[l] & u2) ? 16 : 0;
        *y++ = d2 * static_cast<float>(v) - m2;
      }
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // (d * scale) * q, left to right as llama.cpp evaluates it.
        y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// ---------------------------------------------------------------- quantization (32-blocks)

// The value of largest magnitude (the first of equals; 0 when all are 0).
float max_magnitude(const float* x, int n) {
  float amax = 0.f, max = 0.f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Q4_0 / Q5_0: d from the value of largest magnitude, levels offset by half the range. Q4_1 /
// Q5_1: d over [min, max], m = min. Levels are truncated after +0.5 (the formats' rounding) and
// clamped at the top, which catches x == max.
template <class Block>
void quant_32(const float* x, int64_t nb, Block* y) {
  constexpr bool kFive = requires(const Block& k) { k.qh; };
  constexpr bool kMin = requires(const Block& k) { k.m; };
  constexpr int kTop = kFive ? 31 : 15, kHalf = kTop / 2 + 1;
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float min = 0.f, d;
    if constexpr (kMin) {
      float max = -FLT_MAX;
      min = FLT_MAX;
      for (int j = 0; j < 32; ++j) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
      }
      d = (max - min) / kTop;
      y[i].m = float_to_half(min);
    } else {
      d = max_magnitude(x, 32) / -kHalf;
    }
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = float_to_half(d);
    auto level = [&](float v) {
      const float r = kMin ? (v - min) * id + 0.5f : v * id + (kHalf + 0.5f);
      return std::min(kTop, static_cast<int>(static_cast<int8_t>(r)));
    };
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int a = level(x[j]), b = level(x[j + 16]);
      y[i].qs[j] = static_cast<uint8_t>((a & 0xF) | ((b & 0xF) << 4));
      qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((b >> 4) & 1) << (j + 16);
    }
    if constexpr (kFive) std::memcpy(y[i].qh, &qh, 4);
  }
}

void quant_q8_0(const float* x, int64_t nb, BlockQ8_0* y) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = float_to_half(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

// ---------------------------------------------------------------- K-quant scale searches

int clamp_level(int l, int nmax) { return std::max(-nmax, std::min(nmax - 1, l)); }

// The levels l of x * iscale in [-nmax, nmax-1] (stored as l + offset in L unless L is null) and
// the x^2-weighted sums of the fit x ~ scale * l: sumlx = sum w x l, suml2 = sum w l^2.
struct SymmetricFit {
  float sumlx = 0, suml2 = 0;
};
SymmetricFit round_symmetric(int n, int nmax, const float* x, float iscale, int8_t* L, int offset) {
  SymmetricFit f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_level(nearest_int(iscale * x[i]), nmax);
    if (L != nullptr) L[i] = static_cast<int8_t>(l + offset);
    const float w = x[i] * x[i];
    f.sumlx += w * x[i] * static_cast<float>(l);
    f.suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  return f;
}

// The first fit of a symmetric search, at iscale = -nmax / max with max the value of largest
// magnitude (stored in *max); nullopt, with L zeroed, when the group is all but zero.
std::optional<SymmetricFit> start_symmetric(int n, int nmax, const float* x, int8_t* L, int offset, float* max) {
  *max = max_magnitude(x, n);
  if (std::fabs(*max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return std::nullopt;
  }
  return round_symmetric(n, nmax, x, -nmax / *max, L, offset);
}

// Symmetric quantization of n values to [-nmax, nmax-1] with the scale chosen among 19
// candidates to maximise the x^2-weighted fit; returns the scale, L holds q + nmax.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float max;
  std::optional<SymmetricFit> first = start_symmetric(n, nmax, x, L, nmax, &max);
  if (!first) return 0.f;
  SymmetricFit f = *first;
  float scale = f.suml2 != 0.f ? f.sumlx / f.suml2 : 0.0f;
  float best = scale * f.sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    f = round_symmetric(n, nmax, x, iscale, nullptr, 0);
    if (f.suml2 > 0 && f.sumlx * f.sumlx > best * f.suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(nmax + clamp_level(nearest_int(iscale * x[i]), nmax));
      scale = f.sumlx / f.suml2;
      best = scale * f.sumlx;
    }
  }
  return scale;
}

// Symmetric 3-bit fit refined by coordinate descent on the x^2-weighted error (Q3_K).
float fit_symmetric_q3(int n, int nmax, const float* x, int8_t* L) {
  float max;
  std::optional<SymmetricFit> first = start_symmetric(n, nmax, x, L, 0, &max);
  if (!first) return 0.f;
  auto [sumlx, suml2] = *first;
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
        const int new_l = clamp_level(nearest_int(x[i] * sl2 / slx), nmax);
        if (new_l != L[i]) {
          slx += w * x[i] * static_cast<float>(new_l);
          sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric quantization x ~= scale * L - min to [0, nmax]: starts from the min/max grid, then
// tries nstep+1 grid widths and solves the weighted least squares for scale and min at each.
// Returns the scale and stores the (non-negative) min in *the_min.
float fit_affine(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                 float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                 bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ---------------------------------------------------------------- K-quant quantizers

// Levels 0..3 of a 256 super-block into Q2_K / Q3_K's qs: byte l of each 128 half holds
// elements l, l + 32, l + 64, l + 96 from the low bits up.
template <class Level>
void pack_2bit(const Level* L, uint8_t* qs) {
  for (int j = 0; j < 256; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Fits the 16 groups of 16 of a super-block with `fit` (levels into L, scales into `scales`) and
// returns the group scale of largest magnitude.
float fit_groups16(float (*fit)(int, int, const float*, int8_t*), int nmax, const float* x, int8_t* L,
                   float scales[16]) {
  for (int g = 0; g < 16; ++g) scales[g] = fit(16, nmax, x + 16 * g, L + 16 * g);
  return max_magnitude(scales, 16);
}

// The final levels of 16 groups of 16 under the stored scales d * sc[g], as l + nmax with l in
// [-nmax, nmax-1]; groups whose scale is 0 keep the levels of the search.
void requantize_16x16(const float* x, uint16_t d_half, const int8_t* sc, int nmax, int8_t* L) {
  for (int j = 0; j < 16; ++j) {
    const float d = half_to_float(d_half) * static_cast<float>(sc[j]);
    if (d == 0.f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = clamp_level(nearest_int(x[16 * j + ii] / d), nmax);
      L[16 * j + ii] = static_cast<int8_t>(l + nmax);
    }
  }
}

void quant_q2_k(const float* x, int64_t nb, BlockQ2_K* y) {
  uint8_t L[256], Laux[16];
  float weights[16], mins[16], scales[16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                             15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j)
        y[i].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      y[i].d = float_to_half(max_scale / q4scale);
    } else {
      std::fill(y[i].scales, y[i].scales + 16, 0);
      y[i].d = float_to_half(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j)
        y[i].scales[j] = static_cast<uint8_t>(y[i].scales[j] | (nearest_int(iscale * mins[j]) << 4));
      y[i].dmin = float_to_half(max_min / q4scale);
    } else {
      y[i].dmin = float_to_half(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = half_to_float(y[i].d) * static_cast<float>(y[i].scales[j] & 0xF);
      if (d == 0.f) continue;
      const float dm = half_to_float(y[i].dmin) * static_cast<float>(y[i].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

void quant_q3_k(const float* x, int64_t nb, BlockQ3_K* y) {
  int8_t L[256];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    const float max_scale = fit_groups16(fit_symmetric_q3, 4, x, L, scales);
    std::memset(y[i].scales, 0, 12);
    if (max_scale != 0.f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l = std::max(-32, std::min(31, l)) + 32;
        if (j < 8)
          y[i].scales[j] = static_cast<uint8_t>(l & 0xF);
        else
          y[i].scales[j - 8] = static_cast<uint8_t>(y[i].scales[j - 8] | ((l & 0xF) << 4));
        y[i].scales[j % 4 + 8] = static_cast<uint8_t>(y[i].scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
      }
      y[i].d = float_to_half(1 / iscale);
    } else {
      y[i].d = float_to_half(0.f);
    }
    int8_t sc[16];
    q3k_scales(y[i].scales, sc);
    requantize_16x16(x, y[i].d, sc, 4, L);
    std::memset(y[i].hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < 256; ++j) {
      if (L[j] > 3) {
        y[i].hmask[m] = static_cast<uint8_t>(y[i].hmask[m] | hm);
        L[j] = static_cast<int8_t>(L[j] - 4);
      }
      if (++m == 32) {
        m = 0;
        hm = static_cast<uint8_t>(hm << 1);
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with 6-bit scales and mins.
void fit_k4_superblock(const float* x, int nmax, float rmin, int nstep, uint8_t scales_out[12],
                       uint16_t* d_out, uint16_t* dmin_out, uint8_t L[256]) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                           nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {
      scales_out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      scales_out[j - 4] = static_cast<uint8_t>(scales_out[j - 4] | ((ls >> 4) << 6));
      scales_out[j] = static_cast<uint8_t>(scales_out[j] | ((lm >> 4) << 6));
    }
  }
  *d_out = float_to_half(max_scale / 63.f);
  *dmin_out = float_to_half(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, scales_out, &sc, &m);
    const float d = half_to_float(*d_out) * static_cast<float>(sc);
    if (d == 0.f) continue;
    const float dm = half_to_float(*dmin_out) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// Q4_K (levels 0..15), and Q5_K (0..31) whose fifth bits go to qh as deq_k4 reads them.
template <class Block>
void quant_k4(const float* x, int64_t nb, Block* y) {
  constexpr bool kFive = requires(const Block& k) { k.qh; };
  constexpr int kNmax = kFive ? 31 : 15, kSteps = kFive ? 15 : 20;
  constexpr float kRmin = kFive ? -0.5f : -1.f;
  uint8_t L[256];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    std::memset(y[i].scales, 0, 12);
    fit_k4_superblock(x, kNmax, kRmin, kSteps, y[i].scales, &y[i].d, &y[i].dmin, L);
    uint8_t* q = y[i].qs;
    if constexpr (kFive) std::memset(y[i].qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64, q += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if constexpr (kFive) {
          if (l1 > 15) {
            l1 -= 16;
            y[i].qh[j] = static_cast<uint8_t>(y[i].qh[j] | m1);
          }
          if (l2 > 15) {
            l2 -= 16;
            y[i].qh[j] = static_cast<uint8_t>(y[i].qh[j] | m2);
          }
        }
        q[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

void quant_q6_k(const float* x, int64_t nb, BlockQ6_K* y) {
  int8_t L[256];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    const float max_scale = fit_groups16(fit_symmetric, 32, x, L, scales);
    if (std::fabs(max_scale) < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = float_to_half(1 / iscale);
    for (int ib = 0; ib < 16; ++ib)
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    requantize_16x16(x, y[i].d, y[i].scales, 32, L);
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                     ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

const DTypeInfo& quant_info(DType type, const char* what) {
  const DTypeInfo* info = dtype_info(type);
  if (info == nullptr || !is_quantized(type)) fail(what, ": type ", dtype_name(type), " is not a supported block-quantized type");
  return *info;
}

int64_t block_count(DType type, int64_t n, const char* what) {
  const DTypeInfo& info = quant_info(type, what);
  if (n < 0 || n % info.block_size != 0)
    fail(what, ": ", n, " elements of ", info.name, " is not a multiple of the block size ",
         info.block_size);
  return n / info.block_size;
}

}  // namespace

bool is_quantized(DType type) {
  switch (type) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequantize(DType type, const uint8_t* blocks, int64_t n, float* out) {
  const int64_t nb = block_count(type, n, "dequantize");
  switch (type) {
    case DType::Q4_0: return deq_32(reinterpret_cast<const BlockQ4_0*>(blocks), nb, out);
    case DType::Q4_1: return deq_32(reinterpret_cast<const BlockQ4_1*>(blocks), nb, out);
    case DType::Q5_0: return deq_32(reinterpret_cast<const BlockQ5_0*>(blocks), nb, out);
    case DType::Q5_1: return deq_32(reinterpret_cast<const BlockQ5_1*>(blocks), nb, out);
    case DType::Q8_0: return deq_q8_0(reinterpret_cast<const BlockQ8_0*>(blocks), nb, out);
    case DType::Q2_K: return deq_q2_k(reinterpret_cast<const BlockQ2_K*>(blocks), nb, out);
    case DType::Q3_K: return deq_q3_k(reinterpret_cast<const BlockQ3_K*>(blocks), nb, out);
    case DType::Q4_K: return deq_k4(reinterpret_cast<const BlockQ4_K*>(blocks), nb, out);
    case DType::Q5_K: return deq_k4(reinterpret_cast<const BlockQ5_K*>(blocks), nb, out);
    case DType::Q6_K: return deq_q6_k(reinterpret_cast<const BlockQ6_K*>(blocks), nb, out);
    default: break;
  }
  fail("dequantize: type ", dtype_name(type), " is not supported");
}

void quantize(DType type, const float* x, int64_t n, uint8_t* out) {
  const int64_t nb = block_count(type, n, "quantize");
  switch (type) {
    case DType::Q4_0: return quant_32(x, nb, reinterpret_cast<BlockQ4_0*>(out));
    case DType::Q4_1: return quant_32(x, nb, reinterpret_cast<BlockQ4_1*>(out));
    case DType::Q5_0: return quant_32(x, nb, reinterpret_cast<BlockQ5_0*>(out));
    case DType::Q5_1: return quant_32(x, nb, reinterpret_cast<BlockQ5_1*>(out));
    case DType::Q8_0: return quant_q8_0(x, nb, reinterpret_cast<BlockQ8_0*>(out));
    case DType::Q2_K: return quant_q2_k(x, nb, reinterpret_cast<BlockQ2_K*>(out));
    case DType::Q3_K: return quant_q3_k(x, nb, reinterpret_cast<BlockQ3_K*>(out));
    case DType::Q4_K: return quant_k4(x, nb, reinterpret_cast<BlockQ4_K*>(out));
    case DType::Q5_K: return quant_k4(x, nb, reinterpret_cast<BlockQ5_K*>(out));
    case DType::Q6_K: return quant_q6_k(x, nb, reinterpret_cast<BlockQ6_K*>(out));
    default: break;
  }
  fail("quantize: type ", dtype_name(type), " is not supported");
}

namespace quant {

ActKind act_kind(DType type) {
  switch (type) {
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return ActKind::Block256;
    default:
      return ActKind::Block32;
  }
}

void quantize_act32_ref(const float* x, int64_t n, ActBlock32* out) {
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = amax > 0.f ? 127.f / amax : 0.f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = nearest_int(x[j] * id);
      out[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    // llama.cpp's Q8_0 / Q8_1 activation blocks keep the scale as fp16; rounding it the same way
    // makes kexa's products equal llama.cpp's (with an f32 scale, Q8_0 models differed from
    // llama.cpp by up to ~1% of max |logit| in tests/conformance/llamacpp_quant.sh).
    out[i].d = half_to_float(float_to_half(d));
    out[i].sum = sum;
  }
}

void quantize_act256_ref(const float* x, int64_t n, ActBlock256* out) {
  // Same rounding as llama.cpp's Q8_K (scale from the signed extreme, so the extreme maps to
  // -127 exactly): K-quant products then match llama.cpp to float rounding instead of differing
  // wherever a value sits on a rounding boundary.
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    const float max = max_magnitude(x, 256);
    const float iscale = max != 0.f ? -127.f / max : 0.f;
    out[i].d = max != 0.f ? 1 / iscale : 0.f;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 16 * g; j < 16 * g + 16; ++j) {
        const int q = std::min(127, nearest_int(iscale * x[j]));
        out[i].qs[j] = static_cast<int8_t>(q);
        sum += q;
      }
      out[i].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_act32(const float* x, int64_t n, ActBlock32* out) {
  if (active_path() == CpuPath::Avx512) return quantize_act32_avx512(x, n, out);
  if (active_path() == CpuPath::Avx2) return quantize_act32_avx2(x, n, out);
  quantize_act32_ref(x, n, out);
}

void quantize_act256(const float* x, int64_t n, ActBlock256* out) {
  if (active_path() == CpuPath::Avx512) return quantize_act256_avx512(x, n, out);
  if (active_path() == CpuPath::Avx2) return quantize_act256_avx2(x, n, out);
  quantize_act256_ref(x, n, out);
}

}  // namespace quant

}  // namespace kexa::kernels
