#version 450
// Rotary position embedding, rotate-half form (Hugging Face's): for i < d/2,
//   y[i]       = x[i] cos(a_i) - x[i + d/2] sin(a_i)
//   y[i + d/2] = x[i + d/2] cos(a_i) + x[i] sin(a_i)
// over x [tokens, heads, d], in place. cos/sin come from a table [tokens, d/2] the host computes per
// position (theta and linear / llama3 scaling applied there, angles rounded as transformers does).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint tokens; uint heads; uint headDim; } pc;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer CS { vec2 cs[]; };  // (cos, sin)

void main() {
  const uint halfD = pc.headDim / 2;
  const uint id = gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x + gl_GlobalInvocationID.x;
  if (id >= pc.tokens * pc.heads * halfD) return;
  const uint i = id % halfD;
  const uint th = id / halfD;          // token * heads + head
  const uint t = th / pc.heads;
  const uint base = th * pc.headDim;
  const vec2 c = cs[t * halfD + i];
  const float a = x[base + i];
  const float b = x[base + i + halfD];
  x[base + i] = a * c.x - b * c.y;
  x[base + i + halfD] = b * c.x + a * c.y;
}
