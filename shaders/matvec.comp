#version 450
// y = W x with x as floats, for one weight format (a define: W_F32, W_F16, W_BF16, W_Q8, W_Q4). The
// interface, the tiling and the fused variants: matvec_base.glsl; the formats' block decoding:
// matvec_blocks.glsl. This file is the loop over a row's blocks: straight from memory, or for INT4
// through x staged in shared memory.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#define X_TYPE vec4
#include "matvec_base.glsl"

#if defined(W_Q4)
// With 8 vec4s of x per lane, lanes reading x straight from memory stride 128 bytes apart, so each
// load touches as many cache lines as there are lanes. Instead the workgroup stages a chunk of x
// (THREADS blocks' worth) in shared memory with coalesced loads; every tile of the workgroup reads
// it. Padding one vec4 after every NX keeps the lanes' reads on different banks. Measured on the
// H100: INT4 36% -> 45% of the copy rate; INT8 (4 vec4s per lane) lost to the barriers (83% -> 67%).
#define SHARED_X 1
shared vec4 xChunk[THREADS * (NX + 1)];
#endif

#include "matvec_blocks.glsl"

#if defined(SHARED_X)
// The loop over a row's blocks, THREADS blocks of x at a time staged in shared memory (sx: the sum
// of a block's slice, for the minimum term). Every invocation runs every chunk (barriers need
// uniform control flow); idle ones skip the math.
void accumulateRows(uint local, uint lane, uint base, uint blocks, uint row0, uint nr, inout float acc0, inout float acc1, inout float acc2, inout float acc3) {
  for (uint chunk = 0; chunk < blocks; chunk += THREADS) {
    const uint chunkVec4s = min(THREADS, blocks - chunk) * NX;
    for (uint v = local; v < chunkVec4s; v += gl_WorkGroupSize.x) xChunk[v + v / NX] = x[chunk * NX + v];
    barrier();
    const uint b = chunk + lane;
    if (nr > 0 && b < blocks) {
      vec4 xs[NX];
      float sx = 0.0;
      for (uint i = 0; i < NX; i++) {
        xs[i] = xChunk[lane * (NX + 1) + i];
        sx += dot(xs[i], vec4(1.0));
      }
      acc0 += blockDot(w[base + b], xs, sx, groupWord(row0, b, false));
      if (ROWS > 1 && nr > 1) acc1 += blockDot(w[base + blocks + b], xs, sx, groupWord(row0 + 1, b, false));
      if (GLU != 0u) {
        acc2 += blockDot(w2[base + b], xs, sx, groupWord(row0, b, true));
        if (ROWS > 1 && nr > 1) acc3 += blockDot(w2[base + blocks + b], xs, sx, groupWord(row0 + 1, b, true));
      } else {
        if (ROWS > 2 && nr > 2) acc2 += blockDot(w[base + 2 * blocks + b], xs, sx, groupWord(row0 + 2, b, false));
        if (ROWS > 3 && nr > 3) acc3 += blockDot(w[base + 3 * blocks + b], xs, sx, groupWord(row0 + 3, b, false));
      }
    }
    barrier();
  }
}
#else
// One block b of the tile's rows (and, with GLU, of U's), its slice of x read straight from memory.
void step(uint b, uint base, uint blocks, uint row0, uint nr, inout float acc0, inout float acc1, inout float acc2, inout float acc3) {
  vec4 xs[NX];
  for (uint i = 0; i < NX; i++) xs[i] = x[NX * b + i];
  acc0 += blockDot(w[base + b], xs, 0.0, groupWord(row0, b, false));
  if (ROWS > 1 && nr > 1) acc1 += blockDot(w[base + blocks + b], xs, 0.0, groupWord(row0 + 1, b, false));
  if (GLU != 0u) {
    acc2 += blockDot(w2[base + b], xs, 0.0, groupWord(row0, b, true));
    if (ROWS > 1 && nr > 1) acc3 += blockDot(w2[base + blocks + b], xs, 0.0, groupWord(row0 + 1, b, true));
  } else {
    if (ROWS > 2 && nr > 2) acc2 += blockDot(w[base + 2 * blocks + b], xs, 0.0, groupWord(row0 + 2, b, false));
    if (ROWS > 3 && nr > 3) acc3 += blockDot(w[base + 3 * blocks + b], xs, 0.0, groupWord(row0 + 3, b, false));
  }
}

// The loop over a row's blocks: UNROLL blocks per lane per iteration, unrolled, so each lane has
// UNROLL weight loads in flight; then the rest.
void accumulateRows(uint local, uint lane, uint base, uint blocks, uint row0, uint nr, inout float acc0, inout float acc1, inout float acc2, inout float acc3) {
  if (nr > 0) {
    uint b = lane;
    for (; b + (UNROLL - 1u) * THREADS < blocks; b += UNROLL * THREADS) {
      [[unroll]] for (uint u = 0; u < UNROLL; u++) step(b + u * THREADS, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
    }
    for (; b < blocks; b += THREADS) step(b, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
  }
}
#endif

void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint local = gl_LocalInvocationID.x;
  const uint row0 = (wg * TILES + local / THREADS) * ROWS;
  const uint lane = local % THREADS;
  const uint blocks = pc.cols / VALS;
  // Accumulator slots: k < ROWS for rows row0 + k of W; with GLU, 2 + k for the same rows of U.
  // Named, not an array: `ROWS > k` and GLU fold away when the pipeline is specialized, so nothing
  // is indexed dynamically and everything stays in registers.
  float acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
  const uint nr = row0 < pc.rows ? min(ROWS, pc.rows - row0) : 0;
  const uint base = row0 * blocks;
  accumulateRows(local, lane, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
  finishTile(acc0, acc1, acc2, acc3, row0, lane, local, wg);
}
