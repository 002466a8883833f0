#version 450
// Y[t, row] = sum_k X[t, k] W[row, k] for a batch of tokens (prefill), W in any of matvec's formats
// (W_F32, W_F16, W_BF16, W_Q8, W_Q4; docs/formats.md). Tiled through shared memory: a workgroup
// computes BM rows x BN tokens, stepping over k in chunks of BK; W is dequantized as it is loaded.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#define BM 64
#define BN 32
#define BK 32
#if defined(DIRECT)
// DIRECT (CPU drivers such as lavapipe): no shared memory and no barriers, which a CPU driver pays for
// by stepping through every invocation; one invocation computes one row for up to 8 tokens.
layout(local_size_x = 64) in;
#else
layout(local_size_x = 256) in;  // 16 x 16 threads, each 4 rows x 2 tokens
#endif
layout(constant_id = 0) const uint GROUP = 64;

layout(push_constant) uniform Push {
  uint rows; uint cols; uint tokens;
  uint yOffset;  // column of Y for this dispatch's first row
  uint yStride;  // Y's row length (all rows of the matrix)
} pc;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer Params { uint params[]; };
layout(std430, binding = 2) readonly buffer Input { float x[]; };
layout(std430, binding = 3) writeonly buffer Output { float y[]; };

#if !defined(DIRECT)
shared float Ws[BM][BK + 1];
shared float Xs[BN][BK + 1];
#endif

float wval(uint row, uint col) {
  const uint e = row * pc.cols + col;
#if defined(W_F32)
  return uintBitsToFloat(w[e]);
#elif defined(W_F16)
  return unpackHalf2x16(w[e >> 1])[e & 1u];
#elif defined(W_BF16)
  return (e & 1u) == 0u ? bf16lo(w[e >> 1]) : bf16hi(w[e >> 1]);
#elif defined(W_Q8)
  return float(bitfieldExtract(int(w[e >> 2]), int(8u * (e & 3u)), 8)) * uintBitsToFloat(params[row]);
#elif defined(W_Q4)
  const float q = float((w[e >> 3] >> (4u * (e & 7u))) & 15u);
  const vec2 dm = unpackHalf2x16(params[row * (pc.cols / GROUP) + col / GROUP]);
  return q * dm.x + dm.y;
#else
#error "define one of W_F32 W_F16 W_BF16 W_Q8 W_Q4"
#endif
}

#if defined(DIRECT)
// Four consecutive weights of a row, from col (a multiple of 4).
vec4 wval4(uint row, uint col) {
  const uint e = row * pc.cols + col;
#if defined(W_F32)
  return vec4(uintBitsToFloat(w[e]), uintBitsToFloat(w[e + 1u]), uintBitsToFloat(w[e + 2u]), uintBitsToFloat(w[e + 3u]));
#elif defined(W_F16)
  return vec4(unpackHalf2x16(w[e >> 1]), unpackHalf2x16(w[(e >> 1) + 1u]));
#elif defined(W_BF16)
  const uint a = w[e >> 1], b = w[(e >> 1) + 1u];
  return vec4(bf16lo(a), bf16hi(a), bf16lo(b), bf16hi(b));
#elif defined(W_Q8)
  return unpackS8(w[e >> 2]) * uintBitsToFloat(params[row]);
#elif defined(W_Q4)
  const uint word = w[e >> 3] >> (4u * (e & 7u));
  const vec2 dm = unpackHalf2x16(params[row * (pc.cols / GROUP) + col / GROUP]);
  return vec4(float(word & 15u), float((word >> 4) & 15u), float((word >> 8) & 15u), float((word >> 12) & 15u)) * dm.x + dm.y;
#endif
}

void main() {
  const uint id = gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u + gl_GlobalInvocationID.x;
  const uint row = id % pc.rows;
  const uint t0 = (id / pc.rows) * 8u;
  if (t0 >= pc.tokens) return;
  const uint nt = min(8u, pc.tokens - t0);
  float acc[8];
  for (uint j = 0; j < 8u; j++) acc[j] = 0.0;
  uint k = 0;
  if (pc.cols % 4u == 0u) {
    for (; k < pc.cols; k += 4u) {
      const vec4 wv = wval4(row, k);
      for (uint j = 0; j < nt; j++) {
        const uint b = (t0 + j) * pc.cols + k;
        acc[j] += dot(wv, vec4(x[b], x[b + 1u], x[b + 2u], x[b + 3u]));
      }
    }
  }
  for (; k < pc.cols; k++) {
    const float wv = wval(row, k);
    for (uint j = 0; j < nt; j++) acc[j] += wv * x[(t0 + j) * pc.cols + k];
  }
  for (uint j = 0; j < nt; j++) y[(t0 + j) * pc.yStride + pc.yOffset + row] = acc[j];
}
#else
void main() {
  const uint tx = gl_LocalInvocationID.x % 16;  // rows tx*4 .. tx*4+3 of the tile
  const uint ty = gl_LocalInvocationID.x / 16;  // tokens ty*2, ty*2+1 of the tile
  const uint row0 = gl_WorkGroupID.x * BM;
  const uint tok0 = gl_WorkGroupID.y * BN;
  float acc[4][2];
  for (uint i = 0; i < 4; i++) { acc[i][0] = 0.0; acc[i][1] = 0.0; }

  for (uint k0 = 0; k0 < pc.cols; k0 += BK) {
    for (uint i = gl_LocalInvocationID.x; i < BM * BK; i += 256) {
      const uint r = i / BK, k = i % BK;
      Ws[r][k] = (row0 + r < pc.rows && k0 + k < pc.cols) ? wval(row0 + r, k0 + k) : 0.0;
    }
    for (uint i = gl_LocalInvocationID.x; i < BN * BK; i += 256) {
      const uint t = i / BK, k = i % BK;
      Xs[t][k] = (tok0 + t < pc.tokens && k0 + k < pc.cols) ? x[(tok0 + t) * pc.cols + k0 + k] : 0.0;
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      const float x0 = Xs[ty * 2][k];
      const float x1 = Xs[ty * 2 + 1][k];
      for (uint i = 0; i < 4; i++) {
        const float wv = Ws[tx * 4 + i][k];
        acc[i][0] += wv * x0;
        acc[i][1] += wv * x1;
      }
    }
    barrier();
  }
  for (uint i = 0; i < 4; i++) {
    const uint row = row0 + tx * 4 + i;
    for (uint j = 0; j < 2; j++) {
      const uint t = tok0 + ty * 2 + j;
      if (row < pc.rows && t < pc.tokens) y[t * pc.yStride + pc.yOffset + row] = acc[i][j];
    }
  }
}
#endif
