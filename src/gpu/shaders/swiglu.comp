#version 450
// g[i] = silu(g[i]) * u[i] over `count` elements.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Unused { float unused_[]; };
layout(std430, binding = 1) readonly buffer Ubuf { float u[]; };
layout(std430, binding = 2) buffer Gbuf { float g[]; };
layout(push_constant) uniform Push {
  uint count;
  uint pad0, pad1, pad2;
} p;

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * WG;
  if (i >= p.count) return;
  const float v = g[i];
  g[i] = v / (1.0 + exp(-v)) * u[i];
}
