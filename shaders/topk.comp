#version 450
// The k largest of n values (indices and values, in no particular order; the host sorts k pairs),
// without copying the vocabulary back. Each workgroup takes one slice of `slice` values and writes its
// k best at [workgroup * k]; slices shorter than k pad with (-inf, 0xffffffff). A large vocabulary
// runs twice: many slices, then one workgroup over their candidates (`indirect`: each value's index
// is read from InIdx). Per workgroup:
// 1. The k-th largest key by binary search over order-preserving bits of the floats (32 counts).
// 2. Ties at that key: the lowest indices win (a binary search over the index bound), so the chosen
//    set is the same on every run and every device.
// NaN logits are not expected (a NaN key sorts above +inf).
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { uint n; uint k; uint slice; uint indirect; uint idxEnd; } pc;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer OutIdx { uint outIdx[]; };
layout(std430, binding = 2) writeonly buffer OutVal { float outVal[]; };
layout(std430, binding = 3) readonly buffer InIdx { uint inIdx[]; };
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

uint indexOf(uint i) {
  return pc.indirect != 0u ? inIdx[i] : i;
}

void main() {
  const uint lid = gl_LocalInvocationID.x;
  const uint WG = gl_WorkGroupSize.x;
  const uint start = gl_WorkGroupID.x * pc.slice;
  const uint end = min(pc.n, start + pc.slice);
  const uint k = min(pc.k, end - start);
  const uint outBase = gl_WorkGroupID.x * pc.k;
  // 1. Largest t with count(key >= t) >= k: the k-th largest key.
  uint t = 0u;
  for (int bit = 31; bit >= 0; bit--) {
    const uint cand = t | (1u << uint(bit));
    uint c = 0u;
    for (uint i = start + lid; i < end; i += WG) c += keyOf(x[i]) >= cand ? 1u : 0u;
    if (workgroupCount(c) >= k) t = cand;
  }
  uint c = 0u;
  for (uint i = start + lid; i < end; i += WG) c += keyOf(x[i]) > t ? 1u : 0u;
  const uint above = workgroupCount(c);
  // 2. Smallest index bound b with count(key == t, index < b) >= k - above.
  const uint need = k - above;
  uint lo = 0u, hi = pc.idxEnd;
  while (lo < hi) {
    const uint mid = lo + (hi - lo) / 2u;
    uint e = 0u;
    for (uint i = start + lid; i < end; i += WG) e += keyOf(x[i]) == t && indexOf(i) < mid ? 1u : 0u;
    if (workgroupCount(e) >= need) hi = mid; else lo = mid + 1u;
  }
  if (lid == 0u) cursor = 0u;
  barrier();
  for (uint i = start + lid; i < end; i += WG) {
    const uint key = keyOf(x[i]);
    if (key > t || (key == t && indexOf(i) < lo)) {
      const uint at = atomicAdd(cursor, 1u);
      outIdx[outBase + at] = indexOf(i);
      outVal[outBase + at] = x[i];
    }
  }
  for (uint i = k + lid; i < pc.k; i += WG) {
    outIdx[outBase + i] = 0xffffffffu;
    outVal[outBase + i] = -1.0 / 0.0;
  }
}
