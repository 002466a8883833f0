#version 450
// y = W x with x as int8 activations (quant_act.glsl's layout, written by quantize_x.comp or by the
// step that produced x), for the weight formats that take them (a define: W_Q8, W_Q4): packed
// 4 x 8-bit signed dot products (SPV_KHR_integer_dot_product), emitted through spirv_intrinsics.
// The interface, the tiling and the fused variants: matvec_base.glsl; the formats' block decoding:
// matvec_blocks_int8.glsl. This file is the loop over a row's blocks.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packedFormat);

#define X_TYPE uvec4
#include "matvec_base.glsl"
#include "matvec_blocks_int8.glsl"

// One block b of the tile's rows (and, with GLU, of U's) against its int8 activations.
void step(uint b, uint base, uint blocks, uint row0, uint nr, inout float acc0, inout float acc1, inout float acc2, inout float acc3) {
  const XBlock xs = loadX(b);
  acc0 += blockDotQ(w[base + b], xs, groupWord(row0, b, false));
  if (ROWS > 1 && nr > 1) acc1 += blockDotQ(w[base + blocks + b], xs, groupWord(row0 + 1, b, false));
  if (GLU != 0u) {
    acc2 += blockDotQ(w2[base + b], xs, groupWord(row0, b, true));
    if (ROWS > 1 && nr > 1) acc3 += blockDotQ(w2[base + blocks + b], xs, groupWord(row0 + 1, b, true));
  } else {
    if (ROWS > 2 && nr > 2) acc2 += blockDotQ(w[base + 2 * blocks + b], xs, groupWord(row0 + 2, b, false));
    if (ROWS > 3 && nr > 3) acc3 += blockDotQ(w[base + 3 * blocks + b], xs, groupWord(row0 + 3, b, false));
  }
}

void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint local = gl_LocalInvocationID.x;
  const uint row0 = (wg * TILES + local / THREADS) * ROWS;
  const uint lane = local % THREADS;
  const uint blocks = pc.cols / VALS;
  // Accumulator slots as in matvec.comp.
  float acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
  const uint nr = row0 < pc.rows ? min(ROWS, pc.rows - row0) : 0;
  const uint base = row0 * blocks;
  if (nr > 0) {
    // UNROLL blocks per lane per iteration, unrolled, so each lane has UNROLL weight loads in flight; then the rest.
    uint b = lane;
    for (; b + (UNROLL - 1u) * THREADS < blocks; b += UNROLL * THREADS) {
      [[unroll]] for (uint u = 0; u < UNROLL; u++) step(b + u * THREADS, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
    }
    for (; b < blocks; b += THREADS) step(b, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
  }
  finishTile(acc0, acc1, acc2, acc3, row0, lane, local, wg);
}
