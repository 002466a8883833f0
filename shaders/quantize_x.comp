#version 450
// Activations for the integer-dot INT8 and INT4 matrix x vector: x [cols] -> int8 per block of 32
// values with the block's scale s = max|x| / 127 and its exact sum (the INT4 minimum term needs sum(x)).
// NIBBLE_ORDER = 0: natural order (INT8 weights). NIBBLE_ORDER = 1: the order in which a 4-bit weight
// word splits: of each 8 values, the word A holds values 0, 2, 4, 6 and the word B values 1, 3, 5, 7
// (the low and the high nibbles of the weight bytes).
// One workgroup of 32 invocations per block, one value each: it is on the decode path, so latency.
layout(local_size_x = 32) in;
layout(constant_id = 0) const uint NIBBLE_ORDER = 1;
layout(push_constant) uniform Push { uint blocks; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 2) writeonly buffer XS { vec2 xs[]; };
shared float amax[32];
shared float total[32];
shared uint q8[32];

void main() {
  const uint b = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (b >= pc.blocks) return;
  const uint i = gl_LocalInvocationID.x;
  const float v = x[b * 32 + i];
  amax[i] = abs(v);
  total[i] = v;
  barrier();
  for (uint s = 16; s > 0; s >>= 1) {
    if (i < s) {
      amax[i] = max(amax[i], amax[i + s]);
      total[i] += total[i + s];
    }
    barrier();
  }
  const float scale = amax[0] / 127.0;
  const float inv = scale > 0.0 ? 1.0 / scale : 0.0;
  q8[i] = uint(clamp(int(roundEven(v * inv)), -127, 127)) & 255u;
  barrier();
  if (i < 8) {
    // Word i: values base, base + step, base + 2 step, base + 3 step.
    const uint step = NIBBLE_ORDER != 0u ? 2u : 1u;
    const uint base = NIBBLE_ORDER != 0u ? (i / 2) * 8 + i % 2 : i * 4;
    xq[b * 8 + i] = q8[base] | (q8[base + step] << 8) | (q8[base + 2 * step] << 16) | (q8[base + 3 * step] << 24);
  }
  if (i == 0) xs[b] = vec2(scale, total[0]);
}
