#version 450
// y[t][row] = sum_c W[row][c] * x[t][c]: one workgroup per (row, token). W keeps the file's bytes
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
} p;

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
  const uint t = gl_WorkGroupID.y;
  const uint lid = gl_LocalInvocationID.x;
  const uint base = row * p.row_bytes;
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
  const uint xb = t * p.cols;
#elif defined(TYPE_Q8_0) || defined(TYPE_Q4_0)
  const uint act = t * (p.cols / 32u) * 40u;
#else
  const uint act = t * (p.cols / 256u) * 292u;
#endif
  float acc = 0.0;
#if defined(TYPE_F32)
  for (uint c = lid; c < p.cols; c += WG) acc += uintBitsToFloat(w[(base >> 2) + c]) * x[xb + c];
#elif defined(TYPE_F16)
  for (uint c = lid; c < p.cols; c += WG) acc += f16(base + 2u * c) * x[xb + c];
#elif defined(TYPE_BF16)
  for (uint c = lid; c < p.cols; c += WG) acc += uintBitsToFloat(u16(base + 2u * c) << 16) * round_bf16(x[xb + c]);
#elif defined(TYPE_Q8_0)
  for (uint b = lid; b < p.cols / 32u; b += WG) {
    const uint off = base + b * 34u, ao = act + b * 40u;
    int s = 0;
    for (uint j = 0u; j < 32u; ++j) s += i8(off + 2u + j) * a8(ao + j);
    acc += f16(off) * ad(ao + 32u) * float(s);
  }
#elif defined(TYPE_Q4_0)
  for (uint b = lid; b < p.cols / 32u; b += WG) {
    const uint off = base + b * 18u, ao = act + b * 40u;
    int s = 0;
    for (uint j = 0u; j < 16u; ++j) {
      const uint q = b8(off + 2u + j);
      s += (int(q & 0xFu) - 8) * a8(ao + j) + (int(q >> 4) - 8) * a8(ao + j + 16u);
    }
    acc += f16(off) * ad(ao + 32u) * float(s);
  }
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
  // Unit u = 32 values: sub-block u % 8 of super-block u / 8.
#if defined(TYPE_Q4_K)
  const uint BLOCK = 144u, QS = 16u;
#else
  const uint BLOCK = 176u, QS = 48u;
#endif
  for (uint u = lid; u < p.cols / 32u; u += WG) {
    const uint blk = base + (u / 8u) * BLOCK, s = u % 8u;
    const uint ab = act + (u / 8u) * 292u, ao = ab + s * 32u;
    float sc, m;
    scale_min_k4(s, blk + 4u, sc, m);
    const uint q = blk + QS + 32u * (s / 2u);
    const uint shift = (s & 1u) * 4u;
    int dot = 0, sum = 0;
    for (uint l = 0u; l < 32u; ++l) {
      uint v = (b8(q + l) >> shift) & 0xFu;
#if defined(TYPE_Q5_K)
      v += ((b8(blk + 16u + l) >> s) & 1u) * 16u;
#endif
      const int xq = a8(ao + l);
      dot += int(v) * xq;
      sum += xq;
    }
    acc += ad(ab + 256u) * (f16(blk) * sc * float(dot) - f16(blk + 2u) * m * float(sum));
  }
#elif defined(TYPE_Q6_K)
  for (uint u = lid; u < p.cols / 32u; u += WG) {
    const uint blk = base + (u / 8u) * 210u, s = u % 8u;
    const uint ab = act + (u / 8u) * 292u, ao = ab + s * 32u;
    const uint half_ = s / 4u, k = s % 4u;
    const uint ql = blk + half_ * 64u + (k & 1u) * 32u;
    const uint qh = blk + 128u + half_ * 32u;
    const uint sc = blk + 192u + half_ * 8u + 2u * k;
    int dot = 0;
    for (uint g = 0u; g < 2u; ++g) {
      int part = 0;
      for (uint l = 16u * g; l < 16u * g + 16u; ++l) {
        const int q = int(((b8(ql + l) >> ((k / 2u) * 4u)) & 0xFu) | (((b8(qh + l) >> (2u * k)) & 3u) << 4)) - 32;
        part += q * a8(ao + l);
      }
      dot += i8(sc + g) * part;
    }
    acc += f16(blk + 208u) * ad(ab + 256u) * float(dot);
  }
#else
#error "matvec.comp: no TYPE_* defined"
#endif
  const float sum = workgroup_sum(acc);
  if (lid == 0u) y[p.y_offset + t * p.rows + row] = sum;
}
