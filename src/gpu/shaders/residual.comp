#version 450
// Residual update of one row per workgroup: d = rmsnorm(d) * w when has_norm, then x += d.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Wbuf { float w[]; };
layout(std430, binding = 1) buffer Dbuf { float d[]; };
layout(std430, binding = 2) buffer Xbuf { float x[]; };
layout(push_constant) uniform Push {
  uint width;
  float eps;
  uint has_norm;
  uint unused;
} p;

void main() {
  const uint base = gl_WorkGroupID.x * p.width;
  float scale = 1.0;
  if (p.has_norm != 0u) {
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.width; i += WG) ss += d[base + i] * d[base + i];
    scale = inversesqrt(workgroup_sum(ss) / float(p.width) + p.eps);
  }
  for (uint i = gl_LocalInvocationID.x; i < p.width; i += WG) {
    float v = d[base + i];
    if (p.has_norm != 0u) {
      v = v * scale * w[i];
      d[base + i] = v;
    }
    x[base + i] += v;
  }
}
