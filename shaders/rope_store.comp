#version 450
// One dispatch for what sits between the q/k/v projections and attention: with NORM = 1, RMSNorm of
// each head of q and of k first (Gemma 3's q_norm and k_norm: x / rms(x) * (offset + w), one weight
// vector of head_dim for all heads); rotary embedding of q (in place) and of k; k and v written into
// the f16 cache [kvHeads, capacity, d] at slot position % capacity. Rotate-half RoPE (ropeRef in kernels/reference.ts):
// for i < d/2, with (c, s) from the host's table,
//   y[i] = x[i] c - x[i + d/2] s,   y[i + d/2] = x[i + d/2] c + x[i] s.
// One workgroup per token and head: the heads of q, then of k, then of v. Its d/4 invocations each
// take the neighbouring pairs i = 2j, 2j + 1 and their partners at i + d/2 (all that a rotation
// needs), so that each writes whole f16 words of the cache: head_dim must be a multiple of 4.
layout(local_size_x_id = 0) in;  // head_dim / 4
layout(constant_id = 1) const uint NORM = 0;
layout(push_constant) uniform Push { uint tokens; uint heads; uint kvHeads; uint headDim; uint capacity; float eps; float offset; } pc;
layout(std430, binding = 0) buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { vec2 v[]; };
layout(std430, binding = 3) readonly buffer CS { vec2 cs[]; };  // (cos, sin) [tokens, d/2]
layout(std430, binding = 4) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 5) writeonly buffer KC { uint kc[]; };  // f16 pairs
layout(std430, binding = 6) writeonly buffer VC { uint vc[]; };
layout(std430, binding = 7) readonly buffer QN { vec2 qn[]; };  // NORM: q_norm's weight, [d]
layout(std430, binding = 8) readonly buffer KN { vec2 kn[]; };  // NORM: k_norm's weight, [d]
shared float partial[gl_WorkGroupSize.x];

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
      const uint row = (h * pc.capacity + pos[t] % pc.capacity) * halfD;
      kc[row + j] = packHalf2x16(lo);
      kc[row + quarter + j] = packHalf2x16(hi);
    }
  } else if (wg < qHeads + 2 * kHeads) {
    // v: each invocation writes two f16 words of the head.
    const uint th = wg - qHeads - kHeads;
    const uint h = th % pc.kvHeads;
    const uint t = th / pc.kvHeads;
    const uint row = (h * pc.capacity + pos[t] % pc.capacity) * halfD;
    vc[row + 2 * j] = packHalf2x16(v[th * halfD + 2 * j]);
    vc[row + 2 * j + 1] = packHalf2x16(v[th * halfD + 2 * j + 1]);
  }
}
