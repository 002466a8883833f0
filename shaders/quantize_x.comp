#version 450
// Activations for the integer-dot INT4 matrix x vector: x [cols] -> int8 per block of 32 values with
// the block's scale s = max|x| / 127 and its exact sum (the INT4 minimum term needs sum(x)).
// Byte order matches how a 4-bit weight word splits: of each 8 values, the word A holds values
// 0, 2, 4, 6 and the word B values 1, 3, 5, 7 (the low and the high nibbles of the weight bytes).
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint blocks; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 2) writeonly buffer XS { vec2 xs[]; };

uint pack4(int a, int b, int c, int d) {
  return (uint(a) & 255u) | ((uint(b) & 255u) << 8) | ((uint(c) & 255u) << 16) | ((uint(d) & 255u) << 24);
}

void main() {
  const uint b = gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x + gl_GlobalInvocationID.x;
  if (b >= pc.blocks) return;
  float amax = 0.0;
  float sum = 0.0;
  for (uint i = 0; i < 32; i++) {
    const float v = x[b * 32 + i];
    amax = max(amax, abs(v));
    sum += v;
  }
  const float s = amax / 127.0;
  const float inv = s > 0.0 ? 1.0 / s : 0.0;
  int q[8];
  for (uint g = 0; g < 4; g++) {
    for (uint i = 0; i < 8; i++) q[i] = clamp(int(roundEven(x[b * 32 + g * 8 + i] * inv)), -127, 127);
    xq[b * 8 + 2 * g] = pack4(q[0], q[2], q[4], q[6]);
    xq[b * 8 + 2 * g + 1] = pack4(q[1], q[3], q[5], q[7]);
  }
  xs[b] = vec2(s, sum);
}
