#version 450
// RMSNorm over rows of n values: y = x / sqrt(mean(x^2) + eps) * (offset + w); with ADD = 1,
// y += that instead (Gemma's post-norms fused with the residual add).
// offset is 1 for Gemma (weights stored as w - 1), 0 otherwise. One workgroup per row; with
// n = head_dim and rows = tokens x heads it is also the per-head q/k norm. y may alias x.
// QUANT = 1 (one row, n <= MAXN): the output is also written as int8 activations for the
// integer-dot matrix x vector, exactly as quantize_x.comp makes them, in both byte orders (natural
// for INT8 weights, nibble order for INT4) with one (scale, sum) per block of 32: the projections
// that read this norm's output need no quantize_x pass of their own.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ADD = 0;
layout(constant_id = 2) const uint QUANT = 0;
layout(constant_id = 3) const uint MAXN = 1;  // QUANT: the row, staged in shared memory
layout(push_constant) uniform Push { uint rows; uint n; float eps; float offset; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 4) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 5) writeonly buffer XS { vec2 xs[]; };
shared float partial[gl_WorkGroupSize.x];
shared float row[MAXN];
shared float scales[(MAXN + 31) / 32];

// One int8 of a block (value v, 1 / scale inv), as quantize_x.comp rounds it.
uint q8(float v, float inv) {
  return uint(clamp(int(roundEven(v * inv)), -127, 127)) & 255u;
}

void main() {
  const uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (r >= pc.rows) return;
  const uint base = r * pc.n;
  float ss = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < pc.n; i += gl_WorkGroupSize.x) ss += x[base + i] * x[base + i];
  ss = subgroupAdd(ss);
  if (subgroupElect()) partial[gl_SubgroupID] = ss;
  barrier();
  float total = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; i++) total += partial[i];
  const float inv = inversesqrt(total / float(pc.n) + pc.eps);
  for (uint i = gl_LocalInvocationID.x; i < pc.n; i += gl_WorkGroupSize.x) {
    const float v = (ADD != 0u ? y[base + i] : 0.0) + x[base + i] * inv * (pc.offset + w[i]);
    y[base + i] = v;
    if (QUANT != 0u) row[i] = v;
  }
  if (QUANT == 0u) return;
  barrier();
  // Each block's scale (largest magnitude / 127) and sum, one block per invocation; then the packed
  // words, one word of each order per invocation.
  for (uint b = gl_LocalInvocationID.x; b < pc.n / 32u; b += gl_WorkGroupSize.x) {
    float amax = 0.0;
    float sum = 0.0;
    for (uint i = 0; i < 32u; i++) {
      const float v = row[b * 32u + i];
      amax = max(amax, abs(v));
      sum += v;
    }
    scales[b] = amax / 127.0;
    xs[b] = vec2(amax / 127.0, sum);
  }
  barrier();
  for (uint k = gl_LocalInvocationID.x; k < pc.n / 4u; k += gl_WorkGroupSize.x) {
    const uint b = k / 8u;
    const uint word = k % 8u;
    const float scale = scales[b];
    const float rcp = scale > 0.0 ? 1.0 / scale : 0.0;
    // Natural order: values 4 word .. 4 word + 3. Nibble order: of each 8 values, word A holds
    // 0, 2, 4, 6 and word B 1, 3, 5, 7.
    const uint n0 = b * 32u + word * 4u;
    xq8[k] = q8(row[n0], rcp) | (q8(row[n0 + 1u], rcp) << 8) | (q8(row[n0 + 2u], rcp) << 16) | (q8(row[n0 + 3u], rcp) << 24);
    const uint m0 = b * 32u + (word / 2u) * 8u + word % 2u;
    xq4[k] = q8(row[m0], rcp) | (q8(row[m0 + 2u], rcp) << 8) | (q8(row[m0 + 4u], rcp) << 16) | (q8(row[m0 + 6u], rcp) << 24);
  }
}
