// What the matrix x vector kernels share (matvec.comp: float x; matvec_dot.comp: int8 x): the
// interface (specialization constants, push constants, bindings: kernels/table.ts's MATVEC), the
// values per 16-byte block of each weight format, and what follows the loop over a row's blocks:
// the reduction of a tile's partial sums, the epilogue that writes a row, and the block-quantizing
// epilogue (QUANT_OUT). The including kernel defines X_TYPE, the element of its x buffer, and
// includes this after its extensions.
//
// y = W x for one weight format, chosen by a define: W_F32, W_F16, W_BF16, W_Q8 (int8, one f32 scale
// per row) or W_Q4 (4-bit, per group an f16 scale and an f16 minimum). Layouts: docs/formats.md.
// THREADS threads (a multiple of the subgroup size) share a tile of ROWS rows and stride over it in
// 16-byte blocks: each slice of x is loaded once for ROWS rows. A workgroup holds local_size_x /
// THREADS tiles. Partial sums meet through subgroupAdd, then shared memory.
// Fused variants (specialization constants):
//   GLU = 1 (GELU-tanh) or 2 (SiLU): a second matrix U (the up projection, w2) is read beside W (the
//     gate), and y = act(W x) * (U x): the gated MLP's first half in one pass over x.
//   BIAS = 1: y += bias (Qwen 2's q/k/v; with q, k and v stacked in one matrix, QKV is one dispatch).
//   ACCUMULATE = 1: y += W x (the residual stream takes the output projection in place).
//   QUANT_OUT = 1: y is also written as int8 activations (quant_act.glsl) for the next projection
//     (the gated MLP's output for the down projection): the workgroup that completes a block of 32
//     rows (counted in `count`, reset to 0 by that workgroup) quantizes it.
// Workgroups may be laid out in 2-D (x * y) when one dimension would exceed the device's limit.

#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint THREADS = 32;   // threads per tile of rows
layout(constant_id = 2) const uint GROUP = 64;     // W_Q4: values per (scale, min) group
layout(constant_id = 3) const uint ROWS = 2;       // rows per tile: 1 to 4 (1 to 2 with GLU)
layout(constant_id = 4) const uint GLU = 0;        // 0 none, 1 GELU-tanh, 2 SiLU
layout(constant_id = 5) const uint BIAS = 0;
layout(constant_id = 6) const uint ACCUMULATE = 0; // 1: y += W x (a residual add fused in; not with GLU)
layout(constant_id = 7) const uint UNROLL = 1;     // blocks per lane per loop iteration (unrolled)
layout(constant_id = 8) const uint QUANT_OUT = 0;  // 1: also write y as int8 activations
#define SLOTS 4

layout(push_constant) uniform Push {
  uint rows;     // rows in this dispatch (the bound range of W)
  uint cols;
  uint yOffset;  // index in y (and in bias) of this dispatch's first row
} pc;

layout(std430, binding = 0) readonly buffer Weights { uvec4 w[]; };
layout(std430, binding = 1) readonly buffer Params { uint params[]; };
// x: float (vec4) or int8 words (uvec4: quantize_x.comp's), and int8 x's (scale, sum) per 32 values
// (read by matvec_dot.comp only; the float kernel's layout has it too, so both bind alike).
layout(std430, binding = 2) readonly buffer Input { X_TYPE x[]; };
layout(std430, binding = 7) readonly buffer InputScales { vec2 xScales[]; };
// Coherent: with QUANT_OUT the workgroup that quantizes a block reads rows other workgroups wrote.
layout(std430, binding = 3) coherent buffer Output { float y[]; };
layout(std430, binding = 4) readonly buffer Weights2 { uvec4 w2[]; };
layout(std430, binding = 5) readonly buffer Params2 { uint params2[]; };
layout(std430, binding = 6) readonly buffer Bias { float bias[]; };
layout(std430, binding = 8) coherent buffer Count { uint count[]; };  // QUANT_OUT: rows done per block of 32
layout(std430, binding = 9) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 10) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 11) writeonly buffer XS { vec2 xs[]; };
#include "quant_act.glsl"

// Values per 16-byte block of weights (kernels/weight-formats.ts's valuesPerBlock).
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
const uint TILES = gl_WorkGroupSize.x / THREADS;  // tiles of rows per workgroup

shared float partial[gl_WorkGroupSize.x * SLOTS];
shared uint lastBlocks;

// Group word of block b of a row (W_Q4), from the first or the second matrix.
uint groupWord(uint row, uint b, bool second) {
#if defined(W_Q4)
  const uint i = row * (pc.cols / GROUP) + (b * VALS) / GROUP;
  return second ? params2[i] : params[i];
#else
  return 0u;
#endif
}

float activate(float g) {
  if (GLU == 1u) return 0.5 * g * (1.0 + tanh(clamp(0.7978845608028654 * (g + 0.044715 * g * g * g), -10.0, 10.0)));
  return g / (1.0 + exp(-g));
}

// The tile's sums over its lanes: lane k < ROWS gets row row0 + k's (total), and with GLU the same
// row of U's (up). Accumulator slots: k < ROWS for rows row0 + k of W; with GLU, 2 + k for U's.
void reduceTile(float acc0, float acc1, float acc2, float acc3, uint local, uint lane, out float total, out float up) {
  const bool use1 = ROWS > 1;
  const bool use2 = GLU != 0u || ROWS > 2;
  const bool use3 = (GLU != 0u && ROWS > 1) || ROWS > 3;
  const float s0 = subgroupAdd(acc0);
  const float s1 = use1 ? subgroupAdd(acc1) : 0.0;
  const float s2 = use2 ? subgroupAdd(acc2) : 0.0;
  const float s3 = use3 ? subgroupAdd(acc3) : 0.0;
  total = 0.0;
  up = 0.0;
  if (THREADS == gl_SubgroupSize) {
    // A tile is one subgroup: every lane holds the tile's sums.
    if (GLU != 0u) {
      total = lane == 0u ? s0 : s1;
      up = lane == 0u ? s2 : s3;
    } else {
      total = lane == 0u ? s0 : lane == 1u ? s1 : lane == 2u ? s2 : s3;
    }
  } else {
    const uint sg = gl_SubgroupID * SLOTS;
    if (subgroupElect()) {
      partial[sg] = s0;
      if (use1) partial[sg + 1] = s1;
      if (use2) partial[sg + 2] = s2;
      if (use3) partial[sg + 3] = s3;
    }
    barrier();
    if (lane < ROWS) {
      const uint perTile = THREADS / gl_SubgroupSize;
      for (uint i = 0; i < perTile; i++) {
        const uint at = ((local / THREADS) * perTile + i) * SLOTS;
        total += partial[at + lane];
        if (GLU != 0u) up += partial[at + 2 + lane];
      }
    }
  }
}

// Writes row `row` of this dispatch: W_Q8's row scale, the bias, the residual, the activation.
void storeRow(uint row, float total, float up) {
#if defined(W_Q8)
  total *= uintBitsToFloat(params[row]);
  if (GLU != 0u) up *= uintBitsToFloat(params2[row]);
#endif
  if (BIAS != 0u) total += bias[pc.yOffset + row];
  if (ACCUMULATE != 0u) total += y[pc.yOffset + row];
  y[pc.yOffset + row] = GLU != 0u ? activate(total) * up : total;
}

// QUANT_OUT: counts this workgroup's rows into their blocks of 32 (at most two); the workgroup that
// brings a block to 32 rows quantizes it (storeQuantBlock) and resets its count. The fence makes
// every lane's y visible before the count says so. Every invocation of the workgroup calls it.
void quantizeOutput(uint wg, uint local) {
  memoryBarrierBuffer();
  barrier();
  const uint first = pc.yOffset + wg * TILES * ROWS;
  const uint end = min(first + TILES * ROWS, pc.yOffset + pc.rows);
  if (local == 0u) {
    uint mask = 0u;
    for (uint blk = first / 32u, k = 0u; first < end && blk * 32u < end; blk++, k++) {
      const uint n = min(end, blk * 32u + 32u) - max(first, blk * 32u);
      if (atomicAdd(count[blk], n) + n == 32u) mask |= 1u << k;
    }
    lastBlocks = mask;
  }
  barrier();
  if (local < 2u && (lastBlocks & (1u << local)) != 0u) {
    memoryBarrierBuffer();
    const uint blk = first / 32u + local;
    float v[32];
    [[unroll]] for (uint i = 0; i < 32u; i++) v[i] = y[blk * 32u + i];
    storeQuantBlock(v, blk);
    count[blk] = 0u;
  }
}

// After the loop over a row's blocks: the tile's sums reduced, its rows written (lane k writes row
// row0 + k), and with QUANT_OUT the completed blocks quantized. Every invocation calls it.
void finishTile(float acc0, float acc1, float acc2, float acc3, uint row0, uint lane, uint local, uint wg) {
  const uint row = row0 + lane;
  float total;
  float up;
  reduceTile(acc0, acc1, acc2, acc3, local, lane, total, up);
  if (lane < ROWS && row < pc.rows) storeRow(row, total, up);
  if (QUANT_OUT != 0u) quantizeOutput(wg, local);
}
