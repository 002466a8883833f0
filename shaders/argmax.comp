#version 450
// Index of the largest of n values (the first one on ties, as torch.argmax), by one workgroup:
// the next token of greedy decoding without copying the vocabulary back to the host.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; uint outIndex; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Out { uint outIds[]; };
shared float bestV[gl_WorkGroupSize.x];
shared uint bestI[gl_WorkGroupSize.x];
void main() {
  const uint lid = gl_LocalInvocationID.x;
  float bv = -1.0 / 0.0;
  uint bi = 0xffffffffu;
  for (uint i = lid; i < pc.n; i += gl_WorkGroupSize.x) {
    const float v = x[i];
    if (v > bv) { bv = v; bi = i; }  // strided: within a thread, earlier indices come first
  }
  bestV[lid] = bv;
  bestI[lid] = bi;
  barrier();
  for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
    if (lid < s) {
      const float ov = bestV[lid + s];
      const uint oi = bestI[lid + s];
      if (ov > bestV[lid] || (ov == bestV[lid] && oi < bestI[lid])) { bestV[lid] = ov; bestI[lid] = oi; }
    }
    barrier();
  }
  if (lid == 0) outIds[pc.outIndex] = bestI[0] == 0xffffffffu ? 0u : bestI[0];
}
