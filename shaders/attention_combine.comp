#version 450
// Folds the split partial results of attention.comp into o: for each (token, head), with split s
// holding (unnormalised output a_s, max m_s, sum l_s):
//   o = sum_s a_s exp(m_s - M) / sum_s l_s exp(m_s - M),  M = max_s m_s.
// Splits that saw no position carry m = -inf and are skipped. One workgroup per (token, head).
// QUANT = 1 (head_dim a multiple of 32): o is also written as int8 activations (quant_act.glsl) for
// the output projection, whose blocks of 32 lie inside one head: it then needs no quantize_x pass.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint QUANT = 0;
layout(push_constant) uniform Push { uint rows; uint headDim; uint splits; } pc;
layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(std430, binding = 2) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 3) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 4) writeonly buffer XS { vec2 xs[]; };
#include "quant_act.glsl"
shared float head[QUANT != 0u ? 256 : 1];
const uint CH = 8u;  // splits read at once

void main() {
  const uint th = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (th >= pc.rows) return;
  const uint stride = pc.headDim + 2u;
  const uint base = th * pc.splits * stride;
  // Every read in chunks of CH splits issued together before they are used (a split at a time, each
  // invocation waited on memory once per split, three times over). The (m, l) reads are the same for
  // every invocation: one broadcast each.
  float M = -1.0 / 0.0;
  for (uint s0 = 0; s0 < pc.splits; s0 += CH) {
    float mc[CH];
    [[unroll]] for (uint u = 0; u < CH; u++) mc[u] = s0 + u < pc.splits ? part[base + (s0 + u) * stride + pc.headDim] : -1.0 / 0.0;
    [[unroll]] for (uint u = 0; u < CH; u++) M = max(M, mc[u]);
  }
  for (uint i = gl_LocalInvocationID.x; i < pc.headDim; i += gl_WorkGroupSize.x) {
    float a = 0.0, L = 0.0;
    for (uint s0 = 0; s0 < pc.splits; s0 += CH) {
      float mc[CH], lc[CH], ac[CH];
      [[unroll]] for (uint u = 0; u < CH; u++) {
        const bool in_ = s0 + u < pc.splits;
        const uint at = base + (s0 + u) * stride;
        mc[u] = in_ ? part[at + pc.headDim] : -1.0 / 0.0;
        lc[u] = in_ ? part[at + pc.headDim + 1u] : 0.0;
        ac[u] = in_ ? part[at + i] : 0.0;
      }
      [[unroll]] for (uint u = 0; u < CH; u++) {
        if (mc[u] != -1.0 / 0.0) {
          const float f = exp(mc[u] - M);
          L += lc[u] * f;
          a += ac[u] * f;
        }
      }
    }
    o[th * pc.headDim + i] = a / L;
    if (QUANT != 0u) head[i] = a / L;
  }
  if (QUANT == 0u) return;
  barrier();
  for (uint b = gl_LocalInvocationID.x; b < pc.headDim / 32u; b += gl_WorkGroupSize.x) {
    float v[32];
    [[unroll]] for (uint i = 0; i < 32u; i++) v[i] = head[b * 32u + i];
    storeQuantBlock(v, th * (pc.headDim / 32u) + b);
  }
}
