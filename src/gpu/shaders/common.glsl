// Shared by every kexa compute shader: one pipeline layout for all (three storage buffers and 16
// bytes of push constants), byte access to raw weight blocks, and a workgroup sum built on
// subgroup reductions (any subgroup size: 8 on lavapipe, 32 on NVIDIA, 64 on AMD).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#define WG 64
layout(local_size_x = WG) in;

shared float wg_partial[WG];

// Sum of `v` over the workgroup, returned to every invocation.
float workgroup_sum(float v) {
  v = subgroupAdd(v);
  if (subgroupElect()) wg_partial[gl_SubgroupID] = v;
  barrier();
  float s = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) s += wg_partial[i];
  barrier();
  return s;
}
