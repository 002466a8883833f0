#version 450
// Logit softcapping in place: x = cap * tanh(x / cap) (Gemma's final_logit_softcapping).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; float cap; } pc;
layout(std430, binding = 0) buffer X { float x[]; };
void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) x[i] = pc.cap * tanh(clamp(x[i] / pc.cap, -10.0, 10.0));  // clamped: GLSL tanh may give NaN past it
}
