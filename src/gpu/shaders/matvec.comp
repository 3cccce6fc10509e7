#version 450
// y[t][row] = sum_c W[row][c] * x[t][c]: one workgroup per (row, tile of TT tokens), so a
// prefill decodes each weight once per tile; every token's sum runs in the same order whatever the
// tile holds, so a row of a batch equals the row alone. W keeps the file's bytes
// (one of the TYPE_* block formats, decoded here exactly as kernels/quant_ref.cpp defines them);
// y is f32, x f32 or int8 blocks (below). Rows past 65535 continue in gl_WorkGroupID.z.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Wbuf { uint w[]; };
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
#else
// The quantized types multiply the CPU's int8 activation blocks (kernels/quant_blocks.h), bit for
// bit the ones the CPU kernels use: ActBlock32 (40 bytes: qs[32], d) for Q8_0 / Q4_0, ActBlock256
// (292 bytes: qs[256], d, bsums) for the K-quants. Integer sums are exact, as on the CPU.
layout(std430, binding = 1) readonly buffer Abuf { uint xa[]; };
int a8(uint off) { return int(((xa[off >> 2] >> ((off & 3u) * 8u)) & 0xFFu) << 24) >> 24; }
float ad(uint off) { return uintBitsToFloat(xa[off >> 2]); }
#endif
layout(std430, binding = 2) writeonly buffer Ybuf { float y[]; };
layout(push_constant) uniform Push {
  uint rows;
  uint cols;
  uint row_bytes;
  uint y_offset;  // floats: matmul_many writes several products into one output buffer
  uint n;         // tokens
} p;

#define TT 8
shared float tile_part[TT * WG];

uint b8(uint off) { return (w[off >> 2] >> ((off & 3u) * 8u)) & 0xFFu; }
uint u16(uint off) { return b8(off) | (b8(off + 1u) << 8); }
float f16(uint off) { return unpackHalf2x16(u16(off)).x; }
int i8(uint off) { return int(b8(off) << 24) >> 24; }
// Activations are rounded to bf16 (nearest even) for BF16 weights, as the CPU kernels do.
float round_bf16(float v) {
  uint b = floatBitsToUint(v);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return uintBitsToFloat(b & 0xFFFF0000u);
}
// Q4_K / Q5_K 6-bit sub-block scale and min (scale_min_k4).
void scale_min_k4(uint j, uint sc_off, out float sc, out float m) {
  if (j < 4u) {
    sc = float(b8(sc_off + j) & 63u);
    m = float(b8(sc_off + j + 4u) & 63u);
  } else {
    sc = float((b8(sc_off + j + 4u) & 0xFu) | ((b8(sc_off + j - 4u) >> 6) << 4));
    m = float((b8(sc_off + j + 4u) >> 4) | ((b8(sc_off + j) >> 6) << 4));
  }
}

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.z * 65535u;
  if (row >= p.rows) return;  // the whole workgroup leaves together
  const uint t0 = gl_WorkGroupID.y * TT;
  const uint nt = min(TT, p.n - t0);
  const uint lid = gl_LocalInvocationID.x;
  const uint base = row * p.row_bytes;
  float acc[TT];
  for (uint t = 0u; t < TT; ++t) acc[t] = 0.0;
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
  for (uint c = lid; c < p.cols; c += WG) {
#if defined(TYPE_F32)
    const float wv = uintBitsToFloat(w[(base >> 2) + c]);
#elif defined(TYPE_F16)
    const float wv = f16(base + 2u * c);
#else
    const float wv = uintBitsToFloat(u16(base + 2u * c) << 16);
#endif
    for (uint t = 0u; t < nt; ++t) {
#if defined(TYPE_BF16)
      acc[t] += wv * round_bf16(x[(t0 + t) * p.cols + c]);
#else
      acc[t] += wv * x[(t0 + t) * p.cols + c];
#endif
    }
  }
#elif defined(TYPE_Q8_0) || defined(TYPE_Q4_0)
  const uint stride = (p.cols / 32u) * 40u;
  for (uint b = lid; b < p.cols / 32u; b += WG) {
#if defined(TYPE_Q8_0)
    const uint off = base + b * 34u;
    int q[32];
    for (uint j = 0u; j < 32u; ++j) q[j] = i8(off + 2u + j);
#else
    const uint off = base + b * 18u;
    int q[32];
    for (uint j = 0u; j < 16u; ++j) {
      const uint v = b8(off + 2u + j);
      q[j] = int(v & 0xFu) - 8;
      q[j + 16u] = int(v >> 4) - 8;
    }
#endif
    const float d = f16(off);
    for (uint t = 0u; t < nt; ++t) {
      const uint ao = (t0 + t) * stride + b * 40u;
      int s = 0;
      for (uint j = 0u; j < 32u; ++j) s += q[j] * a8(ao + j);
      acc[t] += d * ad(ao + 32u) * float(s);
    }
  }
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
  // Unit u = 32 values: sub-block u % 8 of super-block u / 8.
#if defined(TYPE_Q4_K)
  const uint BLOCK = 144u, QS = 16u;
#else
  const uint BLOCK = 176u, QS = 48u;
#endif
  const uint stride = (p.cols / 256u) * 292u;
  for (uint u = lid; u < p.cols / 32u; u += WG) {
    const uint blk = base + (u / 8u) * BLOCK, s = u % 8u;
    float sc, m;
    scale_min_k4(s, blk + 4u, sc, m);
    const float dsc = f16(blk) * sc, dm = f16(blk + 2u) * m;
    const uint qo = blk + QS + 32u * (s / 2u);
    const uint shift = (s & 1u) * 4u;
    int q[32];
    for (uint l = 0u; l < 32u; ++l) {
      uint v = (b8(qo + l) >> shift) & 0xFu;
#if defined(TYPE_Q5_K)
      v += ((b8(blk + 16u + l) >> s) & 1u) * 16u;
#endif
      q[l] = int(v);
    }
    for (uint t = 0u; t < nt; ++t) {
      const uint ab = (t0 + t) * stride + (u / 8u) * 292u, ao = ab + s * 32u;
      int dot = 0, sum = 0;
      for (uint l = 0u; l < 32u; ++l) {
        const int xq = a8(ao + l);
        dot += q[l] * xq;
        sum += xq;
      }
      acc[t] += ad(ab + 256u) * (dsc * float(dot) - dm * float(sum));
    }
  }
#elif defined(TYPE_Q6_K)
  const uint stride = (p.cols / 256u) * 292u;
  for (uint u = lid; u < p.cols / 32u; u += WG) {
    const uint blk = base + (u / 8u) * 210u, s = u % 8u;
    const uint half_ = s / 4u, k = s % 4u;
    const uint ql = blk + half_ * 64u + (k & 1u) * 32u;
    const uint qh = blk + 128u + half_ * 32u;
    const uint sc = blk + 192u + half_ * 8u + 2u * k;
    const int sc0 = i8(sc), sc1 = i8(sc + 1u);
    const float d = f16(blk + 208u);
    int q[32];
    for (uint l = 0u; l < 32u; ++l) {
      q[l] = int(((b8(ql + l) >> ((k / 2u) * 4u)) & 0xFu) | (((b8(qh + l) >> (2u * k)) & 3u) << 4)) - 32;
    }
    for (uint t = 0u; t < nt; ++t) {
      const uint ab = (t0 + t) * stride + (u / 8u) * 292u, ao = ab + s * 32u;
      int p0 = 0, p1 = 0;
      for (uint l = 0u; l < 16u; ++l) p0 += q[l] * a8(ao + l);
      for (uint l = 16u; l < 32u; ++l) p1 += q[l] * a8(ao + l);
      acc[t] += d * ad(ab + 256u) * float(sc0 * p0 + sc1 * p1);
    }
  }
#else
#error "matvec.comp: no TYPE_* defined"
#endif
  // One barrier per workgroup (llvmpipe runs barriers as coroutine switches): each subgroup's sums
  // of all tokens, then invocation t adds token t's partials in subgroup order.
  for (uint t = 0u; t < nt; ++t) {
    const float v = subgroupAdd(acc[t]);
    if (subgroupElect()) tile_part[t * WG + gl_SubgroupID] = v;
  }
  barrier();
  if (lid < nt) {
    float sum = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) sum += tile_part[lid * WG + i];
    y[p.y_offset + (t0 + lid) * p.rows + row] = sum;
  }
}
