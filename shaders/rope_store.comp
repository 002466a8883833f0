#version 450
// One dispatch for what sits between the q/k/v projections and attention: rotary embedding of q (in
// place) and of k, and k and v written into the f16 cache [kvHeads, capacity, d] at slot
// position % capacity. Rotate-half RoPE as rope.comp: for i < d/2, with (c, s) from the host's table,
//   y[i] = x[i] c - x[i + d/2] s,   y[i + d/2] = x[i + d/2] c + x[i] s.
// An invocation rotates two neighbouring pairs (i = 2j, 2j + 1) so that it writes whole f16 words of
// the cache: head_dim must be a multiple of 4. Items: q rotations, then k rotations with their cache
// writes, then v cache writes.
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint tokens; uint heads; uint kvHeads; uint headDim; uint capacity; } pc;
layout(std430, binding = 0) buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { vec2 v[]; };
layout(std430, binding = 3) readonly buffer CS { vec2 cs[]; };  // (cos, sin) [tokens, d/2]
layout(std430, binding = 4) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 5) writeonly buffer KC { uint kc[]; };  // f16 pairs
layout(std430, binding = 6) writeonly buffer VC { uint vc[]; };

void main() {
  const uint id = gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x + gl_GlobalInvocationID.x;
  const uint d = pc.headDim;
  const uint halfD = d / 2;
  const uint quarter = d / 4;
  const uint qItems = pc.tokens * pc.heads * quarter;
  const uint kItems = pc.tokens * pc.kvHeads * quarter;
  const uint vItems = pc.tokens * pc.kvHeads * halfD;
  if (id < qItems + kItems) {
    const bool isK = id >= qItems;
    const uint r = isK ? id - qItems : id;
    const uint j = r % quarter;
    const uint th = r / quarter;  // token * heads + head (of q or of k)
    const uint t = th / (isK ? pc.kvHeads : pc.heads);
    const uint base = th * d;
    vec2 lo, hi;  // rotated values at (2j, 2j + 1) and (2j + d/2, 2j + 1 + d/2)
    for (uint n = 0; n < 2; n++) {
      const uint i = 2 * j + n;
      const vec2 c = cs[t * halfD + i];
      const float a = isK ? k[base + i] : q[base + i];
      const float b = isK ? k[base + i + halfD] : q[base + i + halfD];
      lo[n] = a * c.x - b * c.y;
      hi[n] = b * c.x + a * c.y;
    }
    if (!isK) {
      q[base + 2 * j] = lo.x;
      q[base + 2 * j + 1] = lo.y;
      q[base + 2 * j + halfD] = hi.x;
      q[base + 2 * j + 1 + halfD] = hi.y;
    } else {
      const uint h = th % pc.kvHeads;
      const uint row = (h * pc.capacity + pos[t] % pc.capacity) * halfD;
      kc[row + j] = packHalf2x16(lo);
      kc[row + quarter + j] = packHalf2x16(hi);
    }
  } else if (id < qItems + kItems + vItems) {
    const uint r = id - qItems - kItems;
    const uint p = r % halfD;
    const uint th = r / halfD;
    const uint h = th % pc.kvHeads;
    const uint t = th / pc.kvHeads;
    vc[(h * pc.capacity + pos[t] % pc.capacity) * halfD + p] = packHalf2x16(v[th * halfD + p]);
  }
}
