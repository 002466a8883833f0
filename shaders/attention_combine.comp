#version 450
// Folds the split partial results of attention.comp into o: for each (token, head), with split s
// holding (unnormalised output a_s, max m_s, sum l_s):
//   o = sum_s a_s exp(m_s - M) / sum_s l_s exp(m_s - M),  M = max_s m_s.
// Splits that saw no position carry m = -inf and are skipped. One workgroup per (token, head).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint rows; uint headDim; uint splits; } pc;
layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };

void main() {
  const uint th = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (th >= pc.rows) return;
  const uint stride = pc.headDim + 2u;
  const uint base = th * pc.splits * stride;
  float M = -1.0 / 0.0;
  for (uint s = 0; s < pc.splits; s++) M = max(M, part[base + s * stride + pc.headDim]);
  float L = 0.0;
  for (uint s = 0; s < pc.splits; s++) {
    const float ms = part[base + s * stride + pc.headDim];
    if (ms != -1.0 / 0.0) L += part[base + s * stride + pc.headDim + 1u] * exp(ms - M);
  }
  for (uint i = gl_LocalInvocationID.x; i < pc.headDim; i += gl_WorkGroupSize.x) {
    float a = 0.0;
    for (uint s = 0; s < pc.splits; s++) {
      const float ms = part[base + s * stride + pc.headDim];
      if (ms != -1.0 / 0.0) a += part[base + s * stride + i] * exp(ms - M);
    }
    o[th * pc.headDim + i] = a / L;
  }
}
