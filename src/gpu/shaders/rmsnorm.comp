#version 450
// Row t of `o` = x[t] / sqrt(mean(x[t]^2) + eps) * w (w when has_weight), one workgroup per row;
// o may be x's buffer.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Wbuf { float w[]; };
layout(std430, binding = 1) buffer Xbuf { float x[]; };
layout(std430, binding = 2) buffer Obuf { float o[]; };
layout(push_constant) uniform Push {
  uint width;
  float eps;
  uint has_weight;
  uint unused;
} p;

void main() {
  const uint base = gl_WorkGroupID.x * p.width;
  float ss = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.width; i += WG) ss += x[base + i] * x[base + i];
  const float scale = inversesqrt(workgroup_sum(ss) / float(p.width) + p.eps);
  for (uint i = gl_LocalInvocationID.x; i < p.width; i += WG) {
    const float v = x[base + i] * scale;
    o[base + i] = p.has_weight != 0u ? v * w[i] : v;
  }
}
