#version 450
// y = W x for one weight format, chosen by a define: W_F32, W_F16, W_BF16, W_Q8 (int8, one f32 scale
// per row) or W_Q4 (4-bit, per group an f16 scale and an f16 minimum). Layouts: docs/formats.md.
//
// T threads (a multiple of the subgroup size) share a tile of R rows and stride over it in 16-byte
// blocks: each slice of x is loaded once for R rows. A workgroup holds local_size_x / T tiles.
// Partial sums meet through subgroupAdd, then shared memory.
// Fused variants (specialization constants):
//   GLU = 1 (GELU-tanh) or 2 (SiLU): a second matrix U (the up projection) is read beside W (the gate),
//     and y = act(W x) * (U x): the gated MLP's first half in one pass over x.
//   BIAS = 1: y += bias (Qwen 2's q/k/v; with q, k and v stacked in one matrix, QKV is one dispatch).
//   ACCUM = 1: y += W x (the residual stream takes the output projection in place).
//   QOUT = 1: y is also written as int8 activations (quant_act.glsl) for the next projection (the
//     gated MLP's output for the down projection): the workgroup that completes a block of 32 rows
//     (counted in `count`, reset to 0 by that workgroup) quantizes it.
// Workgroups may be laid out in 2-D (x * y) when one dimension would exceed the device's limit.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(XDOT)
// INT8 and INT4 with int8 activations (XDOT): packed 4 x 8-bit signed dot products
// (SPV_KHR_integer_dot_product), emitted through spirv_intrinsics. x comes pre-quantized by
// quantize_x.comp, per block of 32 values (in natural order for INT8, nibble order for INT4).
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packedFormat);
#endif

#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint T = 32;      // threads per tile of rows
layout(constant_id = 2) const uint GROUP = 64;  // W_Q4: values per (scale, min) group
layout(constant_id = 3) const uint R = 2;       // rows per tile: 1 to 4 (1 to 2 with GLU)
layout(constant_id = 4) const uint GLU = 0;     // 0 none, 1 GELU-tanh, 2 SiLU
layout(constant_id = 5) const uint BIAS = 0;
layout(constant_id = 6) const uint ACCUM = 0;   // 1: y += W x (a residual add fused in; not with GLU)
layout(constant_id = 7) const uint U = 1;       // blocks per lane per loop iteration (unrolled)
layout(constant_id = 8) const uint QOUT = 0;    // 1: also write y as int8 activations
#define SLOTS 4

layout(push_constant) uniform Push {
  uint rows;     // rows in this dispatch (the bound range of W)
  uint cols;
  uint yOffset;  // index in y (and in bias) of this dispatch's first row
} pc;

layout(std430, binding = 0) readonly buffer Weights { uvec4 w[]; };
layout(std430, binding = 1) readonly buffer Params { uint params[]; };
#if defined(XDOT)
layout(std430, binding = 2) readonly buffer InputQ { uvec4 xq[]; };  // quantize_x.comp's words
layout(std430, binding = 7) readonly buffer InputS { vec2 xsb[]; };  // (scale, sum) per 32 values
#else
layout(std430, binding = 2) readonly buffer Input { vec4 x[]; };
#endif
// Coherent: with QOUT the workgroup that quantizes a block reads rows other workgroups wrote.
layout(std430, binding = 3) coherent buffer Output { float y[]; };
layout(std430, binding = 4) readonly buffer Weights2 { uvec4 w2[]; };
layout(std430, binding = 5) readonly buffer Params2 { uint params2[]; };
layout(std430, binding = 6) readonly buffer Bias { float bias[]; };
layout(std430, binding = 8) coherent buffer Count { uint count[]; };  // QOUT: rows done per block of 32
layout(std430, binding = 9) writeonly buffer XQ8 { uint xq8[]; };
layout(std430, binding = 10) writeonly buffer XQ4 { uint xq4[]; };
layout(std430, binding = 11) writeonly buffer XS { vec2 xs[]; };
#include "quant_act.glsl"

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

shared float partial[gl_WorkGroupSize.x * SLOTS];
shared uint lastBlocks;

#if defined(W_Q4) && !defined(XDOT)
// With 8 vec4s of x per lane, lanes reading x straight from memory stride 128 bytes apart, so each
// load touches as many cache lines as there are lanes. Instead the workgroup stages a chunk of x
// (T blocks' worth) in shared memory with coalesced loads; every tile of the workgroup reads it.
// Padding one vec4 after every NX keeps the lanes' reads on different banks. Measured on the H100:
// INT4 36% -> 45% of the copy rate; INT8 (4 vec4s per lane) lost to the barriers (83% -> 67%).
#define SHARED_X 1
shared vec4 xChunk[T * (NX + 1)];
#endif

// Dot product of one 16-byte block of a row's weights with the matching slice of x (xs).
// W_Q4: p is the block's group word (f16 scale, f16 minimum) and sx the sum of the slice.
float blockDot(uvec4 u, vec4 xs[NX], float sx, uint p) {
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
  const vec2 dm = unpackHalf2x16(p);
  const float qx = dot(unpackU4lo(u.x), xs[0]) + dot(unpackU4hi(u.x), xs[1]) +
                   dot(unpackU4lo(u.y), xs[2]) + dot(unpackU4hi(u.y), xs[3]) +
                   dot(unpackU4lo(u.z), xs[4]) + dot(unpackU4hi(u.z), xs[5]) +
                   dot(unpackU4lo(u.w), xs[6]) + dot(unpackU4hi(u.w), xs[7]);
  return dm.x * qx + dm.y * sx;
#endif
}

#if defined(XDOT)
// The int8 activations that meet one 16-byte block of weights, with their block's (scale, sum).
struct XBlock { uvec4 a; uvec4 c; vec2 sc; };

XBlock loadX(uint b) {
#if defined(W_Q8)
  // 16 values: one word of int8 x; the scale is its 32-value block's.
  return XBlock(xq[b], uvec4(0u), xsb[b / 2u]);
#else
  return XBlock(xq[2u * b], xq[2u * b + 1u], xsb[b]);
#endif
}

#if defined(W_Q8)
// One INT8 block (16 values) against its int8 activations; the row scale is applied at the end.
float blockDotQ(uvec4 u, XBlock x, uint p) {
  return x.sc.x * float(sdot4x8(u.x, x.a.x, 0) + sdot4x8(u.y, x.a.y, 0) + sdot4x8(u.z, x.a.z, 0) + sdot4x8(u.w, x.a.w, 0));
}
#else
// One INT4 block (32 values, inside one group) against its int8 activations: words a = (A0, B0, A1, B1)
// and c = (A2, B2, A3, B3); low nibbles meet the A words, high nibbles the B words.
float blockDotQ(uvec4 u, XBlock x, uint p) {
  const uvec4 a = x.a;
  const uvec4 c = x.c;
  const vec2 xsc = x.sc;
  const uint M = 0x0F0F0F0Fu;
  const int dotq = sdot4x8(u.x & M, a.x, 0) + sdot4x8((u.x >> 4) & M, a.y, 0) +
                   sdot4x8(u.y & M, a.z, 0) + sdot4x8((u.y >> 4) & M, a.w, 0) +
                   sdot4x8(u.z & M, c.x, 0) + sdot4x8((u.z >> 4) & M, c.y, 0) +
                   sdot4x8(u.w & M, c.z, 0) + sdot4x8((u.w >> 4) & M, c.w, 0);
  const vec2 dm = unpackHalf2x16(p);
  return dm.x * xsc.x * float(dotq) + dm.y * xsc.y;
}
#endif
#endif

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

// One block b of the tile's rows (and, with GLU, of U's): the loop body of the direct paths.
void step(uint b, uint base, uint blocks, uint row0, uint nr, inout float acc0, inout float acc1, inout float acc2, inout float acc3) {
#if defined(XDOT)
  const XBlock xs = loadX(b);
#define DOT(word, r, second) blockDotQ(word, xs, groupWord(r, b, second))
#else
  vec4 xs[NX];
  for (uint i = 0; i < NX; i++) xs[i] = x[NX * b + i];
#define DOT(word, r, second) blockDot(word, xs, 0.0, groupWord(r, b, second))
#endif
  acc0 += DOT(w[base + b], row0, false);
  if (R > 1 && nr > 1) acc1 += DOT(w[base + blocks + b], row0 + 1, false);
  if (GLU != 0u) {
    acc2 += DOT(w2[base + b], row0, true);
    if (R > 1 && nr > 1) acc3 += DOT(w2[base + blocks + b], row0 + 1, true);
  } else {
    if (R > 2 && nr > 2) acc2 += DOT(w[base + 2 * blocks + b], row0 + 2, false);
    if (R > 3 && nr > 3) acc3 += DOT(w[base + 3 * blocks + b], row0 + 3, false);
  }
#undef DOT
}

void main() {
  const uint tilesPerGroup = gl_WorkGroupSize.x / T;
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint local = gl_LocalInvocationID.x;
  const uint row0 = (wg * tilesPerGroup + local / T) * R;
  const uint lane = local % T;
  const uint blocks = pc.cols / VALS;

  // Accumulator slots: k < R for rows row0 + k of W; with GLU, 2 + k for the same rows of U.
  // Named, not an array: `R > k` and GLU fold away when the pipeline is specialized, so nothing is
  // indexed dynamically and everything stays in registers.
  float acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
  const uint nr = row0 < pc.rows ? min(R, pc.rows - row0) : 0;
  const uint base = row0 * blocks;
#if defined(SHARED_X)
  // Every invocation runs every chunk (barriers need uniform control flow); idle ones skip the math.
  for (uint chunk = 0; chunk < blocks; chunk += T) {
    const uint chunkVec4s = min(T, blocks - chunk) * NX;
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
#else
  if (nr > 0) {
    // U blocks per lane per iteration, unrolled, so each lane has U weight loads in flight; then the rest.
    uint b = lane;
    for (; b + (U - 1u) * T < blocks; b += U * T) {
      [[unroll]] for (uint u = 0; u < U; u++) step(b + u * T, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
    }
    for (; b < blocks; b += T) step(b, base, blocks, row0, nr, acc0, acc1, acc2, acc3);
  }
#endif
#if defined(SHARED_X)
      acc0 += blockDot(w[base + b], xs, sx, groupWord(row0, b, false));
      if (R > 1 && nr > 1) acc1 += blockDot(w[base + blocks + b], xs, sx, groupWord(row0 + 1, b, false));
      if (GLU != 0u) {
        acc2 += blockDot(w2[base + b], xs, sx, groupWord(row0, b, true));
        if (R > 1 && nr > 1) acc3 += blockDot(w2[base + blocks + b], xs, sx, groupWord(row0 + 1, b, true));
      } else {
        if (R > 2 && nr > 2) acc2 += blockDot(w[base + 2 * blocks + b], xs, sx, groupWord(row0 + 2, b, false));
        if (R > 3 && nr > 3) acc3 += blockDot(w[base + 3 * blocks + b], xs, sx, groupWord(row0 + 3, b, false));
      }
    }
    barrier();
  }
#endif
  const bool use1 = R > 1;
  const bool use2 = GLU != 0u || R > 2;
  const bool use3 = (GLU != 0u && R > 1) || R > 3;
  const float s0 = subgroupAdd(acc0);
  const float s1 = use1 ? subgroupAdd(acc1) : 0.0;
  const float s2 = use2 ? subgroupAdd(acc2) : 0.0;
  const float s3 = use3 ? subgroupAdd(acc3) : 0.0;
  // Lane k of the tile finishes row row0 + k.
  const uint row = row0 + lane;
  float total = 0.0;
  float up = 0.0;
  if (T == gl_SubgroupSize) {
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
    if (lane < R) {
      const uint perTile = T / gl_SubgroupSize;
      for (uint i = 0; i < perTile; i++) {
        const uint at = ((local / T) * perTile + i) * SLOTS;
        total += partial[at + lane];
        if (GLU != 0u) up += partial[at + 2 + lane];
      }
    }
  }
  if (lane < R && row < pc.rows) {
#if defined(W_Q8)
    total *= uintBitsToFloat(params[row]);
    if (GLU != 0u) up *= uintBitsToFloat(params2[row]);
#endif
    if (BIAS != 0u) total += bias[pc.yOffset + row];
    if (ACCUM != 0u) total += y[pc.yOffset + row];
    y[pc.yOffset + row] = GLU != 0u ? activate(total) * up : total;
  }
  if (QOUT != 0u) {
    // Count this workgroup's rows into their blocks (at most two); the workgroup that brings a block
    // to 32 rows quantizes it. The fence makes every lane's y visible before the count says so.
    memoryBarrierBuffer();
    barrier();
    const uint first = pc.yOffset + wg * tilesPerGroup * R;
    const uint end = min(first + tilesPerGroup * R, pc.yOffset + pc.rows);
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
}
