#version 450
// RMSNorm over rows of n values: y = x / sqrt(mean(x^2) + eps) * (offset + w); with ADD = 1,
// y += that instead (Gemma's post-norms fused with the residual add).
// offset is 1 for Gemma (weights stored as w - 1), 0 otherwise. One workgroup per row; with
// n = head_dim and rows = tokens x heads it is also the per-head q/k norm. y may alias x.
// NEXT = 1 (with ADD): then also out = rmsnorm(y) * (offset + w2), the next norm of the residual
// stream (Gemma: the post-norm added in, then the pre-norm of what follows), in the same dispatch; out
// may be x. QUANT then applies to out.
// QUANT = 1 (one row, n <= MAXN): the output is also written as int8 activations for the
// integer-dot matrix x vector (quant_act.glsl, as quantize_x.comp makes them): the projections that
// read this norm's output need no quantize_x pass of their own.
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ADD = 0;
layout(constant_id = 2) const uint QUANT = 0;
layout(constant_id = 3) const uint MAXN = 1;  // QUANT: the row, staged in shared memory
layout(constant_id = 4) const uint NEXT = 0;
// Values of the row each invocation holds in registers (the host makes PER x the workgroup cover the
// row; a longer one goes through the loops after). Every read of the row, its weights and the residual
// is issued at once, before any arithmetic: a decode step's norm is one workgroup, and with the reads
// one loop iteration after another it waited on memory 8 times in a row (9.8 µs on the H200).
layout(constant_id = 5) const uint PER = 1;
layout(push_constant) uniform Push { uint rows; uint n; float eps; float offset; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 4) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 5) writeonly buffer XS { vec2 xs[]; };
layout(std430, binding = 6) readonly buffer W2 { float w2[]; };
layout(std430, binding = 7) writeonly buffer Out { float outp[]; };
shared float partial[gl_WorkGroupSize.x];
shared float row[MAXN];
#include "quant_act.glsl"

void main() {
  const uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (r >= pc.rows) return;
  const uint base = r * pc.n;
  // The sum of squares of a row, over the workgroup.
#define ROW_SUM(ss, total) \
  ss = subgroupAdd(ss); \
  if (subgroupElect()) partial[gl_SubgroupID] = ss; \
  barrier(); \
  for (uint i = 0; i < gl_NumSubgroups; i++) total += partial[i];
  const uint lid = gl_LocalInvocationID.x;
  const uint WG = gl_WorkGroupSize.x;
  float xv[PER], wv[PER], yv[PER], w2v[PER];
  [[unroll]] for (uint j = 0; j < PER; j++) {
    const uint i = lid + j * WG;
    const bool in_ = i < pc.n;
    xv[j] = in_ ? x[base + i] : 0.0;
    wv[j] = in_ ? w[i] : 0.0;
    yv[j] = in_ && ADD != 0u ? y[base + i] : 0.0;
    w2v[j] = in_ && NEXT != 0u ? w2[i] : 0.0;
  }
  float ss = 0.0;
  [[unroll]] for (uint j = 0; j < PER; j++) ss += xv[j] * xv[j];
  for (uint i = lid + PER * WG; i < pc.n; i += WG) ss += x[base + i] * x[base + i];
  float total = 0.0;
  ROW_SUM(ss, total)
  const float inv = inversesqrt(total / float(pc.n) + pc.eps);
  // y may alias x: every x value this invocation needs was read above or is read just before its own y is written.
  float ss2 = 0.0;
  [[unroll]] for (uint j = 0; j < PER; j++) {
    const uint i = lid + j * WG;
    yv[j] += xv[j] * inv * (pc.offset + wv[j]);
    if (i < pc.n) {
      y[base + i] = yv[j];
      if (NEXT != 0u) ss2 += yv[j] * yv[j];
      else if (QUANT != 0u) row[i] = yv[j];
    }
  }
  for (uint i = lid + PER * WG; i < pc.n; i += WG) {
    const float v = (ADD != 0u ? y[base + i] : 0.0) + x[base + i] * inv * (pc.offset + w[i]);
    y[base + i] = v;
    if (NEXT != 0u) ss2 += v * v;
    else if (QUANT != 0u) row[i] = v;
  }
  if (NEXT != 0u) {
    // Every invocation reads back only the values it wrote.
    barrier();
    float total2 = 0.0;
    ROW_SUM(ss2, total2)
    const float inv2 = inversesqrt(total2 / float(pc.n) + pc.eps);
    [[unroll]] for (uint j = 0; j < PER; j++) {
      const uint i = lid + j * WG;
      if (i < pc.n) {
        const float v = yv[j] * inv2 * (pc.offset + w2v[j]);
        outp[base + i] = v;
        if (QUANT != 0u) row[i] = v;
      }
    }
    for (uint i = lid + PER * WG; i < pc.n; i += WG) {
      const float v = y[base + i] * inv2 * (pc.offset + w2[i]);
      outp[base + i] = v;
      if (QUANT != 0u) row[i] = v;
    }
  }
  if (QUANT == 0u) return;
  barrier();
  for (uint b = gl_LocalInvocationID.x; b < pc.n / 32u; b += gl_WorkGroupSize.x) {
    float v[32];
    [[unroll]] for (uint i = 0; i < 32u; i++) v[i] = row[b * 32u + i];
    storeQuantBlock(v, b);
  }
}
