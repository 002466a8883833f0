#version 450
// Decode attention (one query per head and token, typically one token) over the KV cache
// [kvHeads, capacity, HD] (f16; with KV_Q8 int8 in blocks of 32, an f32 scale each in ks / vs), with the G = heads / kvHeads query heads that share a kv head folded into one
// workgroup, so each key and value row is read once for all of them (attention.comp reads it once per
// query head). GQA, causal, sliding window over the ring, softcap; f32 arithmetic (f16 K and V).
//
// A workgroup per (token, kv head, split); split s of `splits` takes one contiguous share of the
// token's visible positions, and each of its NSG subgroups takes every NSG-th tile of SG positions:
//   scores: lane i takes position j0 + i, reads its key row whole and computes its G scores against
//           Q (scaled, in shared memory: every lane reads the same Q values, a broadcast);
//   softmax: each head's tile maximum moves the subgroup's running reference m (online softmax);
//   values: the lanes turn to the dims (pairs lane, lane + SG, ...), and for each position of the tile
//           add p times its value row (read coalesced) into G accumulators, p read from shared memory.
// The value rows of a tile are first read into shared memory by the whole subgroup (coalesced, every
// read issued at once), VR rows at a time, then added from there: read from memory one position after
// another, each waited for its load (H200, Llama 3.1 8B at 32k: 164.3 -> 125.6 µs a layer).
// The subgroups meet in shared memory at the end; with one split the workgroup writes o, with several
// (unnormalised output, max, sum) per head to `part`, folded by attention_combine.comp (a split that
// saw no position writes m = -inf, which the combine pass skips).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;  // NSG * SG
layout(constant_id = 1) const uint SG = 32;  // the subgroup size the pipeline runs at (the host requires it where it can)
layout(constant_id = 2) const uint HD = 128;  // head_dim, a multiple of 8
layout(constant_id = 3) const uint G = 4;  // query heads per kv head
layout(constant_id = 4) const uint NSG = 4;  // subgroups a workgroup
layout(push_constant) uniform Push {
  uint tokens; uint heads; uint kvHeads; uint headDim;
  uint capacity; uint window;  // window 0 = no window
  float scale; float softcap;  // softcap 0 = none
  uint splits;
} pc;
layout(std430, binding = 0) readonly buffer Q { vec4 q[]; };
layout(std430, binding = 1) readonly buffer K { uvec4 kc[]; };  // 8 halves (KV_Q8: 16 int8)
layout(std430, binding = 2) readonly buffer V { uvec4 vc[]; };  // 8 halves (KV_Q8: 16 int8)
layout(std430, binding = 3) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer Part { float part[]; };  // [tokens * heads * splits][HD + 2]
layout(std430, binding = 6) readonly buffer KS { float ks[]; };  // KV_Q8: [kvHeads, capacity, HD / 32]
layout(std430, binding = 7) readonly buffer VS { float vs[]; };

#if KV_Q8
// The 4 signed bytes of a word, in order.
vec4 bytes4(uint w) { return vec4(ivec4(uvec4(w) << uvec4(24u, 16u, 8u, 0u)) >> 24); }
#endif

const uint PAIRS = (HD / 2u + SG - 1u) / SG;  // pairs of dims per lane in the value phase
const float LOWEST = -1e30;  // below every score; no infinities in the arithmetic
// Every shared array a whole number of 16 bytes (test/engine/kernels/shared-layout.test.ts says why).
shared vec4 qs[G * HD / 4u];  // Q, scaled
shared float ps[(NSG * SG * G + 3u) / 4u * 4u];  // each subgroup's P of its tile: [sg][position][head]
shared float sm[(NSG * G + 3u) / 4u * 4u];  // each subgroup's reference and sum, per head
shared float sl[(NSG * G + 3u) / 4u * 4u];
shared vec2 sacc[NSG * G * HD / 2u];  // each subgroup's unnormalised output
// Each subgroup's value rows of a tile, VR at a time: 8 KiB a subgroup (uvec4s of WPR a row).
#if KV_Q8
const uint WPR = HD / 16u;
#else
const uint WPR = HD / 8u;
#endif
const uint VR = 512u / WPR;
const uint PPW = HD / 2u / WPR;  // pairs of dims a uvec4 holds: 4 (f16) or 8 (q8)
shared uvec4 vt[NSG * 512u];
#if KV_Q8
shared float vst[NSG * VR * (HD / 32u)];  // their blocks' scales
#endif

void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint tk = wg / pc.splits;  // token * kvHeads + kv head
  const uint split = wg % pc.splits;
  if (tk >= pc.tokens * pc.kvHeads) return;
  const uint t = tk / pc.kvHeads;
  const uint kvh = tk % pc.kvHeads;
  const uint h0 = kvh * G;  // the group's first query head
  // The layout needs the subgroups it was made for (ops.ts takes this kernel only where the size is fixed or required).
  if (gl_NumSubgroups != NSG || gl_SubgroupSize != SG) return;
  const uint sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;

  for (uint e = gl_LocalInvocationID.x; e < G * HD / 4u; e += NSG * SG) qs[e] = q[(t * pc.heads + h0) * (HD / 4u) + e] * pc.scale;
  barrier();

  // This split's share of the visible positions [lo, hi).
  const uint me = pos[t];
  const uint first = pc.window == 0u || me + 1u < pc.window ? 0u : me + 1u - pc.window;
  const uint count = me + 1u - first;
  const uint per = (count + pc.splits - 1u) / pc.splits;
  const uint lo = first + min(count, split * per);
  const uint hi = first + min(count, (split + 1u) * per);

  float m[G], l[G];  // per head: the reference (the same in every lane) and the lane's share of the sum
  vec2 acc[G][PAIRS];  // per head: the lane's pairs of dims of the unnormalised output
  [[unroll]] for (uint g = 0; g < G; g++) {
    m[g] = LOWEST;
    l[g] = 0.0;
    [[unroll]] for (uint k = 0; k < PAIRS; k++) acc[g][k] = vec2(0.0);
  }
  const uint pbase = sg * SG * G;

  // Every subgroup takes the same number of rounds (a subgroup past the end adds nothing): Mesa 26.1's
  // lavapipe computed wrong where the subgroups of a workgroup looped different counts around their
  // subgroup barriers.
  for (uint r0 = lo; r0 < hi; r0 += NSG * SG) {
    const uint j0 = r0 + sg * SG;
    // Scores: this lane's position, its key row against every head's Q.
    const uint j = j0 + lane;
    float s[G];
    [[unroll]] for (uint g = 0; g < G; g++) s[g] = 0.0;
    if (j < hi) {
#if KV_Q8
      // 32 values (two words of 16) a block, each block's dot products times its scale.
      const uint row = kvh * pc.capacity + j % pc.capacity;
      for (uint b = 0; b < HD / 32u; b++) {
        float d[G];
        [[unroll]] for (uint g = 0; g < G; g++) d[g] = 0.0;
        [[unroll]] for (uint h = 0; h < 2u; h++) {
          const uint c = 2u * b + h;
          const uvec4 k16 = kc[row * (HD / 16u) + c];
          const vec4 k0 = bytes4(k16.x), k1 = bytes4(k16.y), k2 = bytes4(k16.z), k3 = bytes4(k16.w);
          [[unroll]] for (uint g = 0; g < G; g++) {
            const uint at = g * (HD / 4u) + 4u * c;
            d[g] += dot(qs[at], k0) + dot(qs[at + 1u], k1) + dot(qs[at + 2u], k2) + dot(qs[at + 3u], k3);
          }
        }
        const float scale = ks[row * (HD / 32u) + b];
        [[unroll]] for (uint g = 0; g < G; g++) s[g] += d[g] * scale;
      }
#else
      const uint row = (kvh * pc.capacity + j % pc.capacity) * (HD / 8u);
      for (uint c = 0; c < HD / 8u; c++) {
        const uvec4 k8 = kc[row + c];
        const vec2 k0 = unpackHalf2x16(k8.x), k1 = unpackHalf2x16(k8.y), k2 = unpackHalf2x16(k8.z), k3 = unpackHalf2x16(k8.w);
        const vec4 ka = vec4(k0, k1), kb = vec4(k2, k3);
        [[unroll]] for (uint g = 0; g < G; g++) s[g] += dot(qs[g * (HD / 4u) + 2u * c], ka) + dot(qs[g * (HD / 4u) + 2u * c + 1u], kb);
      }
#endif
    }
    [[unroll]] for (uint g = 0; g < G; g++) {
      float x = s[g];
      if (pc.softcap > 0.0) x = pc.softcap * tanh(clamp(x / pc.softcap, -10.0, 10.0));
      x = j < hi ? x : LOWEST;
      const float mNew = max(m[g], subgroupMax(x));
      const float alpha = exp(m[g] - mNew);  // 0 from LOWEST: nothing was added yet
      const float p = j < hi ? exp(x - mNew) : 0.0;
      m[g] = mNew;
      l[g] = l[g] * alpha + p;
      [[unroll]] for (uint k = 0; k < PAIRS; k++) acc[g][k] *= alpha;
      ps[pbase + lane * G + g] = p;
    }
    subgroupBarrier();

    // Values: every position of the tile, VR rows at a time read into shared memory by the subgroup,
    // then the lanes over the dims. Every subgroup takes the same chunks (barriers inside).
    const uint n = j0 < hi ? min(SG, hi - j0) : 0u;
    for (uint c0 = 0; c0 < SG; c0 += VR) {
      const uint rows = c0 < n ? min(VR, n - c0) : 0u;
      const uint chunk = min(VR, SG - c0);  // rows of vt this chunk fills (zeros past `rows`)
      for (uint e = lane; e < chunk * WPR; e += SG) {
        const uint i = e / WPR;
        vt[sg * 512u + e] = i < rows ? vc[(kvh * pc.capacity + (j0 + c0 + i) % pc.capacity) * WPR + e % WPR] : uvec4(0u);
      }
#if KV_Q8
      for (uint e = lane; e < chunk * (HD / 32u); e += SG) {
        const uint i = e / (HD / 32u);
        vst[sg * VR * (HD / 32u) + e] = i < rows ? vs[(kvh * pc.capacity + (j0 + c0 + i) % pc.capacity) * (HD / 32u) + e % (HD / 32u)] : 0.0;
      }
#endif
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      for (uint i = 0; i < rows; i++) {
        [[unroll]] for (uint k = 0; k < PAIRS; k++) {
          const uint pr = lane + k * SG;
          if (pr < HD / 2u) {
            const uvec4 t4 = vt[sg * 512u + i * WPR + pr / PPW];
#if KV_Q8
            // The pair's two bytes of its word, times its block's scale.
            const int w = int(t4[(pr / 2u) % 4u]) << (16u - 16u * (pr & 1u));
            const vec2 v = vec2(float(w << 8 >> 24), float(w >> 24)) * vst[sg * VR * (HD / 32u) + i * (HD / 32u) + pr / 16u];
#else
            const vec2 v = unpackHalf2x16(t4[pr % 4u]);
#endif
            [[unroll]] for (uint g = 0; g < G; g++) acc[g][k] += ps[pbase + (c0 + i) * G + g] * v;
          }
        }
      }
      subgroupBarrier();  // vt is written again by the next chunk
    }
    subgroupBarrier();  // ps is written again by the next tile
  }

  // Fold the subgroups: per head, the largest reference; each subgroup's share rescaled to it.
  [[unroll]] for (uint g = 0; g < G; g++) {
    const float sum = subgroupAdd(l[g]);
    if (lane == 0u) {
      sm[sg * G + g] = m[g];
      sl[sg * G + g] = sum;
    }
    [[unroll]] for (uint k = 0; k < PAIRS; k++) {
      const uint pr = lane + k * SG;
      if (pr < HD / 2u) sacc[(sg * G + g) * (HD / 2u) + pr] = acc[g][k];
    }
  }
  barrier();
  for (uint e = gl_LocalInvocationID.x; e < G * (HD / 2u); e += NSG * SG) {
    const uint g = e / (HD / 2u), pr = e % (HD / 2u);
    float M = LOWEST;
    for (uint i = 0; i < NSG; i++) M = max(M, sm[i * G + g]);
    float L = 0.0;
    vec2 a = vec2(0.0);
    for (uint i = 0; i < NSG; i++) {
      const float f = exp(sm[i * G + g] - M);  // 0 for a subgroup that saw nothing (its reference is LOWEST)
      L += sl[i * G + g] * f;
      a += sacc[(i * G + g) * (HD / 2u) + pr] * f;
    }
    const uint th = t * pc.heads + h0 + g;
    if (pc.splits == 1u) {
      o[th * HD + 2u * pr] = a.x / L;
      o[th * HD + 2u * pr + 1u] = a.y / L;
    } else {
      const uint base = (th * pc.splits + split) * (HD + 2u);
      part[base + 2u * pr] = a.x;
      part[base + 2u * pr + 1u] = a.y;
      if (pr == 0u) {
        part[base + HD] = L > 0.0 ? M : -1.0 / 0.0;  // the combine pass skips a split that saw nothing
        part[base + HD + 1u] = L;
      }
    }
  }
}
