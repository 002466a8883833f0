#version 450
// The bandwidth baseline: dst = src, 16 bytes per thread and iteration, grid-stride.
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; } pc;  // uvec4 elements
layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[i] = src[i];
}
