#version 450
// Y[t, row] = sum_k X[t, k] W[row, k] for a batch of tokens (prefill) on cooperative matrices
// (VK_KHR_cooperative_matrix): f16 x f16 products accumulated in f32. A workgroup computes BM rows x BN
// tokens, stepping over k in chunks of BK: W's chunk is dequantized (any of matmul.comp's formats) and
// X's converted to f16 into shared memory, and each subgroup multiplies its WM x WN part of the tile as
// (WM / TM) x (WN / TN) accumulators of the device's TM x TN x TK shape (matmul.ts chooses WN = TN:
// on NVIDIA's driver every WN > TN measured 3x slower). While one chunk is multiplied, the next is
// already read from memory into registers. Needs cols % 8 == 0 (matmul.ts checks).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(local_size_x_id = 0) in;  // (BM / WM) * (BN / WN) subgroups
layout(constant_id = 1) const uint TM = 16;  // the cooperative-matrix shape: C[TM x TN] += A[TM x TK] B[TK x TN]
layout(constant_id = 2) const uint TN = 16;
layout(constant_id = 3) const uint TK = 16;
layout(constant_id = 4) const uint BM = 128;  // the workgroup's tile: rows x tokens
layout(constant_id = 5) const uint BN = 64;
layout(constant_id = 6) const uint WM = 32;  // a subgroup's part of it
layout(constant_id = 7) const uint WN = 32;
layout(constant_id = 8) const uint GROUP = 64;  // INT4's group size
layout(constant_id = 9) const uint SG = 32;  // the subgroup size the pipeline runs at

// The chunk of k and the shared row stride, literals: NVIDIA's driver measured faster with the stride a
// constant it sees before specialization (H200: 49 -> 61 TFLOPS at one tile), and 32 faster than 64.
#define BK 32u

#define LDS 20u  // shared row stride in pairs of halves (BK / 2 + 4): 80 bytes, a multiple of 16 as coopMatLoad wants
const uint CM = WM / TM;
const uint CN = WN / TN;
const uint WG = (BM / WM) * (BN / WN) * SG;

layout(push_constant) uniform Push {
  uint rows; uint cols; uint tokens;
  uint yOffset;  // column of Y for this dispatch's first row
  uint yStride;  // Y's row length (all rows of the matrix)
} pc;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer Params { uint params[]; };
layout(std430, binding = 2) readonly buffer Input { vec4 x[]; };
layout(std430, binding = 3) writeonly buffer Output { float y[]; };

shared f16vec2 Ws[BM * LDS];
shared f16vec2 Xs[BN * LDS];
shared float Cs[(BM / WM) * (BN / WN) * TM * TN];  // one accumulator per subgroup on its way out

// Eight consecutive weights of a row from col (a multiple of 8), as floats.
void wval8(uint row, uint col, out vec4 lo, out vec4 hi) {
  const uint e = row * pc.cols + col;
#if defined(W_F32)
  lo = vec4(uintBitsToFloat(w[e]), uintBitsToFloat(w[e + 1u]), uintBitsToFloat(w[e + 2u]), uintBitsToFloat(w[e + 3u]));
  hi = vec4(uintBitsToFloat(w[e + 4u]), uintBitsToFloat(w[e + 5u]), uintBitsToFloat(w[e + 6u]), uintBitsToFloat(w[e + 7u]));
#elif defined(W_F16)
  const uint i = e >> 1;
  lo = vec4(unpackHalf2x16(w[i]), unpackHalf2x16(w[i + 1u]));
  hi = vec4(unpackHalf2x16(w[i + 2u]), unpackHalf2x16(w[i + 3u]));
#elif defined(W_BF16)
  const uint i = e >> 1;
  const uint a = w[i], b = w[i + 1u], c = w[i + 2u], d = w[i + 3u];
  lo = vec4(bf16lo(a), bf16hi(a), bf16lo(b), bf16hi(b));
  hi = vec4(bf16lo(c), bf16hi(c), bf16lo(d), bf16hi(d));
#elif defined(W_Q8)
  const float s = uintBitsToFloat(params[row]);
  lo = unpackS8(w[e >> 2]) * s;
  hi = unpackS8(w[(e >> 2) + 1u]) * s;
#elif defined(W_Q4)
  const uint word = w[e >> 3];
  const vec2 dm = unpackHalf2x16(params[row * (pc.cols / GROUP) + col / GROUP]);
  lo = unpackU4lo(word) * dm.x + dm.y;
  hi = unpackU4hi(word) * dm.x + dm.y;
#else
#error "define one of W_F32 W_F16 W_BF16 W_Q8 W_Q4"
#endif
}

// What each invocation reads of one chunk: 8 weights at a time, then 4 activations at a time.
const uint W_LOADS = (BM * BK / 8 + WG - 1) / WG;
const uint X_LOADS = (BN * BK / 4 + WG - 1) / WG;
vec4 wlo[W_LOADS], whi[W_LOADS], xv[X_LOADS];

void fetch(uint row0, uint tok0, uint k0) {
  const uint lid = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < W_LOADS; j++) {
    const uint i = lid + j * WG;  // chunk of 8: row i / (BK / 8), columns (i % (BK / 8)) * 8 ..
    const uint r = i / (BK / 8), c = (i % (BK / 8)) * 8u;
    wlo[j] = vec4(0.0);
    whi[j] = vec4(0.0);
    if (r < BM && row0 + r < pc.rows && k0 + c < pc.cols) wval8(row0 + r, k0 + c, wlo[j], whi[j]);
  }
  [[unroll]] for (uint j = 0; j < X_LOADS; j++) {
    const uint i = lid + j * WG;
    const uint t = i / (BK / 4), c = (i % (BK / 4)) * 4u;
    xv[j] = vec4(0.0);
    if (t < BN && tok0 + t < pc.tokens && k0 + c < pc.cols) xv[j] = x[((tok0 + t) * pc.cols + k0 + c) / 4u];
  }
}

void stash() {
  const uint lid = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < W_LOADS; j++) {
    const uint i = lid + j * WG;
    const uint r = i / (BK / 8), c = (i % (BK / 8)) * 8u;
    if (r < BM) {
      const uint o = r * LDS + c / 2u;
      Ws[o] = f16vec2(wlo[j].xy); Ws[o + 1u] = f16vec2(wlo[j].zw); Ws[o + 2u] = f16vec2(whi[j].xy); Ws[o + 3u] = f16vec2(whi[j].zw);
    }
  }
  [[unroll]] for (uint j = 0; j < X_LOADS; j++) {
    const uint i = lid + j * WG;
    const uint t = i / (BK / 4), c = (i % (BK / 4)) * 4u;
    if (t < BN) {
      const uint o = t * LDS + c / 2u;
      Xs[o] = f16vec2(xv[j].xy); Xs[o + 1u] = f16vec2(xv[j].zw);
    }
  }
}

void main() {
  const uint row0 = gl_WorkGroupID.x * BM;
  const uint tok0 = gl_WorkGroupID.y * BN;
  // The tile's layout needs exactly the subgroups it was made for (a driver that runs another subgroup
  // size than the one asked for would index past the tile): none is written otherwise, and matmul.ts's
  // check of the kernel on each device sees it and takes the tiled kernel.
  if (gl_NumSubgroups != (BM / WM) * (BN / WN) || gl_SubgroupSize != SG) return;
  const uint sg = gl_SubgroupID;
  const uint wr = (sg % (BM / WM)) * WM;  // the subgroup's part: rows wr .., tokens wt .. of the tile
  const uint wt = (sg / (BM / WM)) * WN;

  coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> acc[CM * CN];
  [[unroll]] for (uint i = 0; i < CM * CN; i++) acc[i] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);
  coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA> a[CM];
  coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB> b[CN];

  fetch(row0, tok0, 0u);
  for (uint k0 = 0; k0 < pc.cols; k0 += BK) {
    barrier();  // everyone is done with the last chunk in shared memory
    stash();
    barrier();
    if (k0 + BK < pc.cols) fetch(row0, tok0, k0 + BK);  // the next chunk's reads overlap this one's products
    // Offsets and strides in the arrays' own elements, pairs of halves.
    [[unroll]] for (uint kk = 0; kk < BK; kk += TK) {
      [[unroll]] for (uint i = 0; i < CM; i++) coopMatLoad(a[i], Ws, (wr + i * TM) * LDS + kk / 2u, LDS, gl_CooperativeMatrixLayoutRowMajor);
      // B[k][t] = X[t][k]: X's rows in shared memory are B's columns.
      [[unroll]] for (uint j = 0; j < CN; j++) coopMatLoad(b[j], Xs, (wt + j * TN) * LDS + kk / 2u, LDS, gl_CooperativeMatrixLayoutColumnMajor);
      [[unroll]] for (uint i = 0; i < CM; i++) {
        [[unroll]] for (uint j = 0; j < CN; j++) acc[i * CN + j] = coopMatMulAdd(a[i], b[j], acc[i * CN + j]);
      }
    }
  }

  // Out through shared memory, one accumulator at a time: C[r][t] goes to Y[t][yOffset + r].
  const uint cs = sg * TM * TN;
  [[unroll]] for (uint i = 0; i < CM; i++) {
    [[unroll]] for (uint j = 0; j < CN; j++) {
      coopMatStore(acc[i * CN + j], Cs, cs, TM, gl_CooperativeMatrixLayoutColumnMajor);
      subgroupBarrier();
      for (uint e = gl_SubgroupInvocationID; e < TM * TN; e += SG) {
        const uint r = row0 + wr + i * TM + e % TM, t = tok0 + wt + j * TN + e / TM;
        if (r < pc.rows && t < pc.tokens) y[t * pc.yStride + pc.yOffset + r] = Cs[cs + e];
      }
      subgroupBarrier();
    }
  }
}
