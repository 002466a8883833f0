#version 450
// Activations for the integer-dot INT8 and INT4 matrix x vector: x [cols] -> int8 per block of 32
// values in both byte orders with the block's (scale, sum), the layout of quant_act.glsl. The pass a
// projection pays when the step that produced its input did not quantize it. One block per invocation.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 64) in;
layout(push_constant) uniform Push { uint blocks; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 2) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 3) writeonly buffer XS { vec2 xs[]; };
#include "quant_act.glsl"

void main() {
  const uint b = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (b >= pc.blocks) return;
  float v[32];
  [[unroll]] for (uint i = 0; i < 32u; i++) v[i] = x[b * 32u + i];
  storeQuantBlock(v, b);
}
