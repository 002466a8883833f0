#version 450
// One dispatch for what sits between the q/k/v projections and attention: with NORM = 1, RMSNorm of
// each head of q and of k first (Gemma 3's q_norm and k_norm: x / rms(x) * (offset + w), one weight
// vector of head_dim for all heads); rotary embedding of q (in place) and of k; k and v written into
// the cache [kvHeads, capacity, d] at slot position % capacity (f16, or q8 with KV_Q8). Rotate-half RoPE (ropeRef in kernels/reference.ts):
// for i < d/2, with (c, s) from the host's table,
//   y[i] = x[i] c - x[i + d/2] s,   y[i + d/2] = x[i + d/2] c + x[i] s.
// One workgroup per token and head: the heads of q, then of k, then of v. Its d/4 invocations each
// take the neighbouring pairs i = 2j, 2j + 1 and their partners at i + d/2 (all that a rotation
// needs), so that each writes whole f16 words of the cache: head_dim must be a multiple of 4.
// KV_Q8: the cache holds int8 values in blocks of 32 of a head's row, each block's f32 scale in ks / vs
// (q = round(x * 127 / amax), scale = amax / 127: q8Encode in kernels/reference.ts); the row is staged in
// shared memory, one invocation a block finds its scale, and each invocation packs 4 values into a word.
// head_dim must then be a multiple of 32.
layout(local_size_x_id = 0) in;  // head_dim / 4
layout(constant_id = 1) const uint NORM = 0;
layout(push_constant) uniform Push { uint tokens; uint heads; uint kvHeads; uint headDim; uint capacity; float eps; float offset; } pc;
layout(std430, binding = 0) buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { vec2 v[]; };
layout(std430, binding = 3) readonly buffer CS { vec2 cs[]; };  // (cos, sin) [tokens, d/2]
layout(std430, binding = 4) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 5) writeonly buffer KC { uint kc[]; };  // f16 pairs (KV_Q8: 4 int8)
layout(std430, binding = 6) writeonly buffer VC { uint vc[]; };
layout(std430, binding = 7) readonly buffer QN { vec2 qn[]; };  // NORM: q_norm's weight, [d]
layout(std430, binding = 8) readonly buffer KN { vec2 kn[]; };  // NORM: k_norm's weight, [d]
layout(std430, binding = 9) writeonly buffer KS { float ks[]; };  // KV_Q8: the key blocks' scales [kvHeads, capacity, d / 32]
layout(std430, binding = 10) writeonly buffer VS { float vs[]; };  // KV_Q8: the value blocks' scales
shared float partial[gl_WorkGroupSize.x];

#if KV_Q8
shared float staged[gl_WorkGroupSize.x * 4u];  // the head's row of k or v
shared float blockInv[(gl_WorkGroupSize.x / 8u + 3u) / 4u * 4u];  // 127 / amax per block of 32 (0 for zeros)

// Writes the staged row (head_dim values) as int8 words and its blocks' scales at slot `row` (in rows
// of the cache); the whole workgroup calls it after staging.
void storeQ8(uint row, bool isV) {
  barrier();
  const uint j = gl_LocalInvocationID.x;
  const uint blocks = pc.headDim / 32u;
  if (j < blocks) {
    float amax = 0.0;
    for (uint i = 0; i < 32u; i++) amax = max(amax, abs(staged[32u * j + i]));
    blockInv[j] = amax > 0.0 ? 127.0 / amax : 0.0;
    if (isV) vs[row * blocks + j] = amax / 127.0;
    else ks[row * blocks + j] = amax / 127.0;
  }
  barrier();
  const float inv = blockInv[(4u * j) / 32u];
  const ivec4 qv = ivec4(clamp(floor(vec4(staged[4u * j], staged[4u * j + 1u], staged[4u * j + 2u], staged[4u * j + 3u]) * inv + 0.5), -127.0, 127.0));
  const uint word = uint(qv.x & 255) | (uint(qv.y & 255) << 8) | (uint(qv.z & 255) << 16) | (uint(qv.w & 255) << 24);
  if (isV) vc[row * (pc.headDim / 4u) + j] = word;
  else kc[row * (pc.headDim / 4u) + j] = word;
}
#endif

void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint j = gl_LocalInvocationID.x;
  const uint d = pc.headDim;
  const uint halfD = d / 2;
  const uint quarter = d / 4;
  const uint qHeads = pc.tokens * pc.heads;
  const uint kHeads = pc.tokens * pc.kvHeads;
  if (wg < qHeads + kHeads) {
    const bool isK = wg >= qHeads;
    const uint th = isK ? wg - qHeads : wg;  // token * heads + head (of q or of k)
    const uint t = th / (isK ? pc.kvHeads : pc.heads);
    const uint at = th * d + 2 * j;
    // a: the values at 2j, 2j + 1; b: at 2j + d/2, 2j + 1 + d/2.
    vec2 a = isK ? vec2(k[at], k[at + 1]) : vec2(q[at], q[at + 1]);
    vec2 b = isK ? vec2(k[at + halfD], k[at + halfD + 1]) : vec2(q[at + halfD], q[at + halfD + 1]);
    if (NORM != 0u) {
      // The head's sum of squares: each invocation's share in shared memory, every invocation adds
      // them all (at most 64 for head_dim 256). No subgroup operation, so no assumption about how
      // d / 4 invocations (12 for head_dim 48) fall into subgroups.
      partial[j] = dot(a, a) + dot(b, b);
      barrier();
      float total = 0.0;
      for (uint i = 0; i < quarter; i++) total += partial[i];
      const float inv = inversesqrt(total / float(d) + pc.eps);
      a *= inv * (pc.offset + (isK ? kn[j] : qn[j]));
      b *= inv * (pc.offset + (isK ? kn[j + quarter] : qn[j + quarter]));
    }
    vec2 lo, hi;  // rotated values at (2j, 2j + 1) and (2j + d/2, 2j + 1 + d/2)
    for (uint n = 0; n < 2; n++) {
      const vec2 c = cs[t * halfD + 2 * j + n];
      lo[n] = a[n] * c.x - b[n] * c.y;
      hi[n] = b[n] * c.x + a[n] * c.y;
    }
    if (!isK) {
      q[at] = lo.x;
      q[at + 1] = lo.y;
      q[at + halfD] = hi.x;
      q[at + halfD + 1] = hi.y;
    } else {
      const uint h = th % pc.kvHeads;
#if KV_Q8
      staged[2u * j] = lo.x;
      staged[2u * j + 1u] = lo.y;
      staged[halfD + 2u * j] = hi.x;
      staged[halfD + 2u * j + 1u] = hi.y;
      storeQ8(h * pc.capacity + pos[t] % pc.capacity, false);
#else
      const uint row = (h * pc.capacity + pos[t] % pc.capacity) * halfD;
      kc[row + j] = packHalf2x16(lo);
      kc[row + quarter + j] = packHalf2x16(hi);
#endif
    }
  } else if (wg < qHeads + 2 * kHeads) {
    // v: each invocation writes two f16 words of the head.
    const uint th = wg - qHeads - kHeads;
    const uint h = th % pc.kvHeads;
    const uint t = th / pc.kvHeads;
#if KV_Q8
    const vec2 v0 = v[th * halfD + 2 * j], v1 = v[th * halfD + 2 * j + 1];
    staged[4u * j] = v0.x;
    staged[4u * j + 1u] = v0.y;
    staged[4u * j + 2u] = v1.x;
    staged[4u * j + 3u] = v1.y;
    storeQ8(h * pc.capacity + pos[t] % pc.capacity, true);
#else
    const uint row = (h * pc.capacity + pos[t] % pc.capacity) * halfD;
    vc[row + 2 * j] = packHalf2x16(v[th * halfD + 2 * j]);
    vc[row + 2 * j + 1] = packHalf2x16(v[th * halfD + 2 * j + 1]);
#endif
  }
}
