#version 450
// Embedding lookup: out[t, :] = table[ids[t], :] * scale, for tables in f32 (E_F32), f16 (E_F16),
// bf16 (E_BF16) or INT8 with one f32 scale per row (E_Q8). Token ids are read from a buffer, so a
// recorded decode step picks up the token the previous step chose. The table may be bound in row ranges
// (a table past the device's storage-buffer range or allocation size): a dispatch per range writes the
// tokens whose id falls inside it.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint tokens; uint hidden; float scale; uint vocab; uint rowStart; uint rows; } pc;
layout(std430, binding = 0) readonly buffer Table { uint table[]; };
layout(std430, binding = 1) readonly buffer RowScale { float rowScale[]; };
layout(std430, binding = 2) readonly buffer Ids { uint ids[]; };
layout(std430, binding = 3) writeonly buffer Out { float o[]; };

float value(uint row, uint i) {
#if defined(E_F32)
  return uintBitsToFloat(table[row * pc.hidden + i]);
#elif defined(E_F16) || defined(E_BF16)
  const uint e = row * pc.hidden + i;
  const uint word = table[e >> 1];
#if defined(E_F16)
  return unpackHalf2x16(word)[e & 1u];
#else
  return (e & 1u) == 0u ? bf16lo(word) : bf16hi(word);
#endif
#elif defined(E_Q8)
  const uint e = row * pc.hidden + i;
  return float(bitfieldExtract(int(table[e >> 2]), int(8 * (e & 3u)), 8)) * rowScale[row];
#else
#error "define E_F32, E_F16, E_BF16 or E_Q8"
#endif
}

void main() {
  const uint t = gl_WorkGroupID.y;
  if (t >= pc.tokens) return;
  const uint id = min(ids[t], pc.vocab - 1u);
  if (id < pc.rowStart || id - pc.rowStart >= pc.rows) return;
  const uint row = id - pc.rowStart;  // in the bound range
  for (uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.hidden; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    o[t * pc.hidden + i] = value(row, i) * pc.scale;
  }
}
