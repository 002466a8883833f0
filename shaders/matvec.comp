#version 450
// y = W x for one weight format, chosen by a define: W_F32, W_F16, W_BF16, W_Q8 (int8, one f32 scale
// per row) or W_Q4 (4-bit, per group an f16 scale and an f16 minimum). Layouts: docs/formats.md.
//
// T threads (a multiple of the subgroup size) share a tile of R rows and stride over it in 16-byte
// blocks: each slice of x is loaded once for R rows. A workgroup holds local_size_x / T tiles.
// Partial sums meet through subgroupAdd, then shared memory.
// Workgroups may be laid out in 2-D (x * y) when one dimension would exceed the device's limit.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require

#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint T = 32;      // threads per tile of rows
layout(constant_id = 2) const uint GROUP = 64;  // W_Q4: values per (scale, min) group
layout(constant_id = 3) const uint R = 4;       // rows per tile: each x slice loaded once serves R rows
#define MAX_R 8

layout(push_constant) uniform Push {
  uint rows;     // rows in this dispatch (the bound range of W)
  uint cols;
  uint yOffset;  // index in y of this dispatch's first row
} pc;

layout(std430, binding = 0) readonly buffer Weights { uvec4 w[]; };
layout(std430, binding = 1) readonly buffer Params { uint params[]; };
layout(std430, binding = 2) readonly buffer Input { vec4 x[]; };
layout(std430, binding = 3) writeonly buffer Output { float y[]; };

#if defined(W_F32)
const uint VALS = 4;
#elif defined(W_F16) || defined(W_BF16)
const uint VALS = 8;
#elif defined(W_Q8)
const uint VALS = 16;
#elif defined(W_Q4)
const uint VALS = 32;
#else
#error "define one of W_F32 W_F16 W_BF16 W_Q8 W_Q4"
#endif
const uint NX = VALS / 4;  // vec4s of x per 16-byte block of weights

shared float partial[gl_WorkGroupSize.x * MAX_R];

// Dot product of one 16-byte block of a row's weights with the matching slice of x (xs).
// sx: W_Q4 only, the sum of the slice.
float blockDot(uvec4 u, vec4 xs[NX], float sx, uint b, uint row) {
#if defined(W_F32)
  return dot(uintBitsToFloat(u), xs[0]);
#elif defined(W_F16)
  return dot(vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)), xs[0]) +
         dot(vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w)), xs[1]);
#elif defined(W_BF16)
  return dot(vec4(bf16lo(u.x), bf16hi(u.x), bf16lo(u.y), bf16hi(u.y)), xs[0]) +
         dot(vec4(bf16lo(u.z), bf16hi(u.z), bf16lo(u.w), bf16hi(u.w)), xs[1]);
#elif defined(W_Q8)
  return dot(unpackS8(u.x), xs[0]) + dot(unpackS8(u.y), xs[1]) + dot(unpackS8(u.z), xs[2]) + dot(unpackS8(u.w), xs[3]);
#elif defined(W_Q4)
  // sum((q * d + m) * x) = d * sum(q * x) + m * sum(x); a block lies inside one group.
  const vec2 dm = unpackHalf2x16(params[row * (pc.cols / GROUP) + (b * VALS) / GROUP]);
  const float qx = dot(unpackU4lo(u.x), xs[0]) + dot(unpackU4hi(u.x), xs[1]) +
                   dot(unpackU4lo(u.y), xs[2]) + dot(unpackU4hi(u.y), xs[3]) +
                   dot(unpackU4lo(u.z), xs[4]) + dot(unpackU4hi(u.z), xs[5]) +
                   dot(unpackU4lo(u.w), xs[6]) + dot(unpackU4hi(u.w), xs[7]);
  return dm.x * qx + dm.y * sx;
#endif
}

void main() {
  const uint tilesPerGroup = gl_WorkGroupSize.x / T;
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint local = gl_LocalInvocationID.x;
  const uint row0 = (wg * tilesPerGroup + local / T) * R;
  const uint lane = local % T;
  const uint blocks = pc.cols / VALS;

  float acc[MAX_R];
  for (uint r = 0; r < MAX_R; r++) acc[r] = 0.0;
  if (row0 < pc.rows) {
    const uint nr = min(R, pc.rows - row0);
    for (uint b = lane; b < blocks; b += T) {
      vec4 xs[NX];
      float sx = 0.0;
      for (uint i = 0; i < NX; i++) {
        xs[i] = x[NX * b + i];
#if defined(W_Q4)
        sx += dot(xs[i], vec4(1.0));
#endif
      }
      for (uint r = 0; r < R; r++) {
        if (r < nr) acc[r] += blockDot(w[(row0 + r) * blocks + b], xs, sx, b, row0 + r);
      }
    }
  }
  for (uint r = 0; r < R; r++) {
    const float s = subgroupAdd(acc[r]);
    if (subgroupElect()) partial[gl_SubgroupID * R + r] = s;
  }
  barrier();
  // Lane r of the tile finishes row row0 + r.
  const uint row = row0 + lane;
  if (lane < R && row < pc.rows) {
    const uint perTile = T / gl_SubgroupSize;
    float total = 0.0;
    for (uint i = 0; i < perTile; i++) total += partial[((local / T) * perTile + i) * R + lane];
#if defined(W_Q8)
    total *= uintBitsToFloat(params[row]);
#endif
    y[pc.yOffset + row] = total;
  }
}
