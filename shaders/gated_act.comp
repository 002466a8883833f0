#version 450
// Gated MLP activation: out = act(gate) * up, act = GELU-tanh (ACT_GELU_TANH) or SiLU (ACT_SILU).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; } pc;
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };

float act(float v) {
#if defined(ACT_GELU_TANH)
  // 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))); tanh's argument clamped: GLSL's tanh may give
  // NaN for large arguments, and tanh(10) is already 1 in f32.
  const float k = 0.7978845608028654;
  return 0.5 * v * (1.0 + tanh(clamp(k * (v + 0.044715 * v * v * v), -10.0, 10.0)));
#elif defined(ACT_SILU)
  return v / (1.0 + exp(-v));
#else
#error "define ACT_GELU_TANH or ACT_SILU"
#endif
}

void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) o[i] = act(g[i]) * u[i];
}
