#version 450
// Stores keys or values [tokens, kvHeads, d] (f32) into an f16 cache [kvHeads, capacity, d] at slot
// position % capacity: capacity = context length for global layers, the window for sliding ones
// (a ring). Positions come from a buffer [tokens].
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint tokens; uint kvHeads; uint headDim; uint capacity; } pc;
layout(std430, binding = 0) readonly buffer Src { vec2 src[]; };
layout(std430, binding = 1) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 2) writeonly buffer Cache { uint cache[]; };  // f16 pairs
void main() {
  const uint pairs = pc.headDim / 2;
  const uint id = gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x + gl_GlobalInvocationID.x;
  if (id >= pc.tokens * pc.kvHeads * pairs) return;
  const uint p = id % pairs;
  const uint th = id / pairs;
  const uint h = th % pc.kvHeads;
  const uint t = th / pc.kvHeads;
  const uint slot = pos[t] % pc.capacity;
  cache[(h * pc.capacity + slot) * pairs + p] = packHalf2x16(src[th * pairs + p]);
}
