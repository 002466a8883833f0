#version 450
// The k largest of n values (indices and values, in no particular order; the host sorts k pairs),
// without copying the vocabulary back: one workgroup.
// 1. The k-th largest key by binary search over order-preserving bits of the floats (32 counts).
// 2. Ties at that key: the lowest indices win (a binary search over the index bound), so the chosen
//    set is the same on every run and every device.
// NaN logits are not expected (a NaN key sorts above +inf).
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; uint k; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer OutIdx { uint outIdx[]; };
layout(std430, binding = 2) writeonly buffer OutVal { float outVal[]; };
shared uint red[gl_WorkGroupSize.x];
shared uint cursor;

uint keyOf(float v) {
  const uint u = floatBitsToUint(v);
  return (u & 0x80000000u) != 0u ? ~u : u | 0x80000000u;
}

uint workgroupCount(uint c) {
  c = subgroupAdd(c);
  if (subgroupElect()) red[gl_SubgroupID] = c;
  barrier();
  uint total = 0u;
  for (uint i = 0; i < gl_NumSubgroups; i++) total += red[i];
  barrier();
  return total;
}

void main() {
  const uint lid = gl_LocalInvocationID.x;
  const uint WG = gl_WorkGroupSize.x;
  const uint k = min(pc.k, pc.n);
  // 1. Largest t with count(key >= t) >= k: the k-th largest key.
  uint t = 0u;
  for (int bit = 31; bit >= 0; bit--) {
    const uint cand = t | (1u << uint(bit));
    uint c = 0u;
    for (uint i = lid; i < pc.n; i += WG) c += keyOf(x[i]) >= cand ? 1u : 0u;
    if (workgroupCount(c) >= k) t = cand;
  }
  uint c = 0u;
  for (uint i = lid; i < pc.n; i += WG) c += keyOf(x[i]) > t ? 1u : 0u;
  const uint above = workgroupCount(c);
  // 2. Smallest index bound b with count(key == t, index < b) >= k - above.
  const uint need = k - above;
  uint lo = 0u, hi = pc.n;
  while (lo < hi) {
    const uint mid = (lo + hi) / 2u;
    uint e = 0u;
    for (uint i = lid; i < mid; i += WG) e += keyOf(x[i]) == t ? 1u : 0u;
    if (workgroupCount(e) >= need) hi = mid; else lo = mid + 1u;
  }
  if (lid == 0u) cursor = 0u;
  barrier();
  for (uint i = lid; i < pc.n; i += WG) {
    const uint key = keyOf(x[i]);
    if (key > t || (key == t && i < lo)) {
      const uint at = atomicAdd(cursor, 1u);
      outIdx[at] = i;
      outVal[at] = x[i];
    }
  }
}
