#version 450
// RMSNorm over rows of n values: y = x / sqrt(mean(x^2) + eps) * (offset + w); with ADD = 1,
// y += that instead (Gemma's post-norms fused with the residual add).
// offset is 1 for Gemma (weights stored as w - 1), 0 otherwise. One workgroup per row; with
// n = head_dim and rows = tokens x heads it is also the per-head q/k norm. y may alias x.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ADD = 0;
layout(push_constant) uniform Push { uint rows; uint n; float eps; float offset; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= pc.rows) return;
  const uint base = row * pc.n;
  float ss = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < pc.n; i += gl_WorkGroupSize.x) ss += x[base + i] * x[base + i];
  ss = subgroupAdd(ss);
  if (subgroupElect()) partial[gl_SubgroupID] = ss;
  barrier();
  float total = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; i++) total += partial[i];
  const float inv = inversesqrt(total / float(pc.n) + pc.eps);
  for (uint i = gl_LocalInvocationID.x; i < pc.n; i += gl_WorkGroupSize.x) y[base + i] = (ADD != 0u ? y[base + i] : 0.0) + x[base + i] * inv * (pc.offset + w[i]);
}
