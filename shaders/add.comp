#version 450
// Residual add, y = a + b (y may alias a); with bn < n, b repeats every bn values (a bias added to
// each of n / bn rows).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; uint bn; } pc;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) y[i] = a[i] + b[i % pc.bn];
}
