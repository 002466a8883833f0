#version 450
// Attention of queries [tokens, heads, d] over the KV cache [kvHeads, capacity, d] (f16, or with KV_Q8
// int8 in blocks of 32 with an f32 scale each, in ks / vs: rope_store.comp writes both): GQA (kv head =
// head / (heads / kvHeads)), causal, optional sliding window (the last `window` positions, the
// query's own included), optional logit softcapping, online softmax (memory constant in the context).
//
// Work split (flash-decoding): a workgroup per (token, head, split); split s of `splits` takes one
// contiguous share of the token's visible positions. Inside it each subgroup takes every
// NSG-th position: its lanes hold d / subgroupSize dims each (coalesced reads of a key or value row),
// the score is one subgroupAdd, and each subgroup keeps its own running max, sum and output. The
// subgroups meet in shared memory at the end. With one split the workgroup writes o; with several it
// writes (unnormalised output, max, sum) to `part`, which attention_combine.comp folds into o.
// Decode (one token) uses many splits so that the GPU is busy; a prompt batch uses one.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MAX_D = 256;  // largest head_dim supported
// The subgroup size the pipeline runs at (the host passes the device's, or the one it required): it
// bounds the per-lane arrays and the subgroup count, so any size from 4 to 128 is right. The host
// keeps workgroups at 16 subgroups or fewer.
layout(constant_id = 2) const uint SG_SIZE = 32;
layout(push_constant) uniform Push {
  uint tokens; uint heads; uint kvHeads; uint headDim;
  uint capacity; uint window;  // window 0 = no window
  float scale; float softcap;  // softcap 0 = none
  uint splits;
} pc;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kc[]; };  // f16 pairs (KV_Q8: 4 int8)
layout(std430, binding = 2) readonly buffer V { uint vc[]; };
layout(std430, binding = 3) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer Part { float part[]; };  // [tokens * heads * splits][d + 2]
layout(std430, binding = 6) readonly buffer KS { float ks[]; };  // KV_Q8: [kvHeads, capacity, d / 32]
layout(std430, binding = 7) readonly buffer VS { float vs[]; };

// Dims 2p, 2p + 1 of cache row `row` (in rows of head_dim), of keys or values.
#if KV_Q8
vec2 q8Pair(uint word, uint p, float scale) {
  const int w = int(word) << (16u - 16u * (p & 1u));  // the pair's two bytes at the top
  return vec2(float(w << 8 >> 24), float(w >> 24)) * scale;
}
vec2 keyPair(uint row, uint p) { return q8Pair(kc[row * (pc.headDim / 4u) + p / 2u], p, ks[row * (pc.headDim / 32u) + p / 16u]); }
vec2 valuePair(uint row, uint p) { return q8Pair(vc[row * (pc.headDim / 4u) + p / 2u], p, vs[row * (pc.headDim / 32u) + p / 16u]); }
#else
vec2 keyPair(uint row, uint p) { return unpackHalf2x16(kc[row * (pc.headDim / 2u) + p]); }
vec2 valuePair(uint row, uint p) { return unpackHalf2x16(vc[row * (pc.headDim / 2u) + p]); }
#endif

// Pairs of dims per lane: at most MAX_D / 2 / SG_SIZE; loops over this constant bound are unrolled,
// so the per-lane arrays stay in registers.
const uint LANE_PAIRS = (MAX_D / 2 + SG_SIZE - 1) / SG_SIZE;
const uint MAX_SG = 16;  // subgroups per workgroup, at most
shared float sm[MAX_SG];
shared float sl[MAX_SG];
shared vec2 sacc[MAX_SG * (MAX_D / 2)];

void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint th = wg / pc.splits;  // token * heads + head
  const uint split = wg % pc.splits;
  if (th >= pc.tokens * pc.heads) return;
  const uint t = th / pc.heads;
  const uint h = th % pc.heads;
  const uint kvh = h / (pc.heads / pc.kvHeads);
  const uint lane = gl_SubgroupInvocationID;
  const uint SG = gl_SubgroupSize;
  const uint pairs = pc.headDim / 2;

  // This lane's dims of q (pairs lane, lane + SG, ...), scaled.
  vec2 qv[LANE_PAIRS];
  vec2 acc[LANE_PAIRS];
  [[unroll]] for (uint k = 0; k < LANE_PAIRS; k++) {
    const uint p = lane + k * SG;
    qv[k] = p < pairs ? vec2(q[th * pc.headDim + 2 * p], q[th * pc.headDim + 2 * p + 1]) * pc.scale : vec2(0.0);
    acc[k] = vec2(0.0);
  }

  // This split's share of the visible positions [first, me].
  const uint me = pos[t];
  const uint first = pc.window == 0u || me + 1u < pc.window ? 0u : me + 1u - pc.window;
  const uint count = me + 1u - first;
  const uint per = (count + pc.splits - 1u) / pc.splits;
  const uint lo = first + min(count, split * per);
  const uint hi = first + min(count, (split + 1u) * per);  // exclusive

  float m = -1.0 / 0.0;
  float l = 0.0;
  for (uint j = lo + gl_SubgroupID; j < hi; j += gl_NumSubgroups) {
    const uint row = kvh * pc.capacity + j % pc.capacity;
    float s = 0.0;
    [[unroll]] for (uint k = 0; k < LANE_PAIRS; k++) {
      const uint p = lane + k * SG;
      if (p < pairs) s += dot(qv[k], keyPair(row, p));
    }
    s = subgroupAdd(s);
    if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -10.0, 10.0));
    const float mNew = max(m, s);
    const float rescale = exp(m - mNew);
    const float e = exp(s - mNew);
    l = l * rescale + e;
    m = mNew;
    [[unroll]] for (uint k = 0; k < LANE_PAIRS; k++) {
      const uint p = lane + k * SG;
      if (p < pairs) acc[k] = acc[k] * rescale + e * valuePair(row, p);
    }
  }

  // Fold the subgroups: shared max, each subgroup's share rescaled to it.
  const uint sg = gl_SubgroupID;
  if (subgroupElect()) { sm[sg] = m; sl[sg] = l; }
  [[unroll]] for (uint k = 0; k < LANE_PAIRS; k++) {
    const uint p = lane + k * SG;
    if (p < pairs) sacc[sg * (MAX_D / 2) + p] = acc[k];
  }
  barrier();
  float M = -1.0 / 0.0;
  for (uint i = 0; i < gl_NumSubgroups; i++) M = max(M, sm[i]);
  float L = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; i++) L += sm[i] == -1.0 / 0.0 ? 0.0 : sl[i] * exp(sm[i] - M);
  for (uint p = gl_LocalInvocationID.x; p < pairs; p += gl_WorkGroupSize.x) {
    vec2 a = vec2(0.0);
    for (uint i = 0; i < gl_NumSubgroups; i++) if (sm[i] != -1.0 / 0.0) a += sacc[i * (MAX_D / 2) + p] * exp(sm[i] - M);
    if (pc.splits == 1u) {
      o[th * pc.headDim + 2 * p] = a.x / L;
      o[th * pc.headDim + 2 * p + 1] = a.y / L;
    } else {
      const uint base = wg * (pc.headDim + 2u);
      part[base + 2 * p] = a.x;
      part[base + 2 * p + 1] = a.y;
    }
  }
  if (pc.splits > 1u && gl_LocalInvocationID.x == 0u) {
    const uint base = wg * (pc.headDim + 2u);
    part[base + pc.headDim] = M;
    part[base + pc.headDim + 1u] = L;
  }
}
