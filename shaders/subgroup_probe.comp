#version 450
// What the driver does with subgroups in a workgroup of local_size_x invocations (any size, also not
// a multiple of the subgroup size): per invocation, gl_SubgroupSize, gl_NumSubgroups, gl_SubgroupID,
// gl_SubgroupInvocationID, subgroupAdd(1) (the active lanes of its subgroup) and subgroupAdd(index + 1).
// unicorn checks these once per device against what its kernels assume (kernels/subgroups.ts).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Out { uint o[]; };  // 6 words per invocation
void main() {
  const uint i = gl_LocalInvocationID.x;
  const uint lanes = subgroupAdd(1u);
  const uint sum = subgroupAdd(i + 1u);
  o[6u * i] = gl_SubgroupSize;
  o[6u * i + 1u] = gl_NumSubgroups;
  o[6u * i + 2u] = gl_SubgroupID;
  o[6u * i + 3u] = gl_SubgroupInvocationID;
  o[6u * i + 4u] = lanes;
  o[6u * i + 5u] = sum;
}
