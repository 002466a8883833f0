#version 450
// Attention of queries [tokens, heads, d] over an f16 KV cache [kvHeads, capacity, d], one workgroup
// per (token, head): GQA (kv head = head / (heads / kvHeads)), causal, optional sliding window (the
// last `window` positions, the query's own included), optional logit softcapping. Online softmax over
// chunks of positions: memory stays constant whatever the context. Decode is tokens = 1.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MAX_D = 256;  // largest head_dim supported
layout(push_constant) uniform Push {
  uint tokens; uint heads; uint kvHeads; uint headDim;
  uint capacity; uint window;  // window 0 = no window
  float scale; float softcap;  // softcap 0 = none
} pc;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kc[]; };  // f16 pairs
layout(std430, binding = 2) readonly buffer V { uint vc[]; };
layout(std430, binding = 3) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };

shared float qs[MAX_D];
shared float p[gl_WorkGroupSize.x];
shared float red[gl_WorkGroupSize.x];

float workgroupMax(float v) {
  v = subgroupMax(v);
  if (subgroupElect()) red[gl_SubgroupID] = v;
  barrier();
  float m = red[0];
  for (uint i = 1; i < gl_NumSubgroups; i++) m = max(m, red[i]);
  barrier();
  return m;
}

float workgroupSum(float v) {
  v = subgroupAdd(v);
  if (subgroupElect()) red[gl_SubgroupID] = v;
  barrier();
  float s = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; i++) s += red[i];
  barrier();
  return s;
}

void main() {
  const uint th = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (th >= pc.tokens * pc.heads) return;
  const uint t = th / pc.heads;
  const uint h = th % pc.heads;
  const uint kvh = h / (pc.heads / pc.kvHeads);
  const uint lid = gl_LocalInvocationID.x;
  const uint WG = gl_WorkGroupSize.x;
  const uint d = pc.headDim;
  for (uint i = lid; i < d; i += WG) qs[i] = q[th * d + i] * pc.scale;
  barrier();

  const uint me = pos[t];
  const uint first = pc.window == 0u || me + 1u < pc.window ? 0u : me + 1u - pc.window;
  // Each invocation accumulates output dims lid, lid + WG, ... (MAX_D / WG of them at most).
  const uint PER = (MAX_D + WG - 1) / WG;
  float acc[(MAX_D + 31) / 32];
  for (uint k = 0; k < PER; k++) acc[k] = 0.0;
  float m = -1.0 / 0.0;
  float l = 0.0;
  for (uint c = first; c <= me; c += WG) {
    const uint j = c + lid;
    float s = -1.0 / 0.0;
    if (j <= me) {
      const uint slot = j % pc.capacity;
      s = 0.0;
      for (uint i = 0; i < d; i += 2) {
        const vec2 kk = unpackHalf2x16(kc[((kvh * pc.capacity + slot) * d + i) >> 1]);
        s += qs[i] * kk.x + qs[i + 1] * kk.y;
      }
      if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -10.0, 10.0));
    }
    const float mNew = max(m, workgroupMax(s));
    const float e = j <= me ? exp(s - mNew) : 0.0;
    p[lid] = e;
    const float rescale = exp(m - mNew);
    l = l * rescale + workgroupSum(e);  // workgroupSum's barriers also publish p[]
    m = mNew;
    const uint n = min(WG, me + 1u - c);
    for (uint k = 0; k < PER; k++) {
      const uint i = lid + k * WG;
      if (i < d) {
        float a = acc[k] * rescale;
        for (uint jj = 0; jj < n; jj++) {
          const uint slot = (c + jj) % pc.capacity;
          a += p[jj] * unpackHalf2x16(vc[((kvh * pc.capacity + slot) * d + i) >> 1])[i & 1u];
        }
        acc[k] = a;
      }
    }
    barrier();
  }
  for (uint k = 0; k < PER; k++) {
    const uint i = lid + k * WG;
    if (i < d) o[th * d + i] = acc[k] / l;
  }
}
