#version 450
// Flash attention for a prompt batch on cooperative matrices (VK_KHR_cooperative_matrix, f16 x f16 ->
// f32): queries [tokens, heads, HD] over the KV cache [kvHeads, capacity, HD] (f16; with KV_Q8 int8 in
// blocks of 32, an f32 scale each in ks / vs, made f16 as it is read), with what
// attention.comp computes (GQA, causal, sliding window, softcap) and no score matrix in memory.
//
// A workgroup takes BR = NSG * TM query rows of one kv head: row R is token R / G, head kvh * G + R % G
// (G = heads / kvHeads), so the heads that share a kv head share its reads. It walks the positions any
// of its rows sees in steps of BC keys: the step's keys and values are read into shared memory (the next
// step's into registers meanwhile), and each subgroup, for its own TM rows,
//   S  = Q K^T          (TM x BC: HD / TK products per matrix of S; Q stays in shared memory)
//   P  = exp(S - m)     (masked: invisible positions give 0)
//   O += P V            (TM x HD accumulators, held in registers for the whole walk)
// Online softmax with a lazy reference: m is a per-row reference, moved (and O rescaled, through shared
// memory) only when a score exceeds it by more than THRESHOLD, so P <= e^THRESHOLD (far inside f16)
// and the rescale, a slow path, runs on a block's first step and rarely after (the whole workgroup
// takes it when any row needs it). Each lane keeps its
// own partial row sums; they meet at the end. Needs HD a multiple of TK, TN and 8; BC a multiple of
// SG, TN and TK (attention-coop.ts checks).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_vote : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;  // NSG * SG
layout(constant_id = 1) const uint TM = 16;  // the cooperative-matrix shape: C[TM x TN] += A[TM x TK] B[TK x TN]
layout(constant_id = 2) const uint TN = 16;
layout(constant_id = 3) const uint TK = 16;
layout(constant_id = 4) const uint NSG = 4;  // subgroups: TM query rows each
layout(constant_id = 5) const uint BC = 32;  // keys per step
layout(constant_id = 6) const uint HD = 128;  // head_dim
// The subgroup size the pipeline runs at. (Q's matrices are read from shared memory at every step; held
// in registers for the whole walk they computed zeros on NVIDIA's driver 580, but that was while the
// shared arrays there were misaligned, see below: not tried since.)
layout(constant_id = 7) const uint SG = 32;
// 1: the next step's keys and values are read into registers while this step multiplies (LOADS uvec4s
// of each per invocation); 0: read straight into shared memory at the step's start (fewer registers).
layout(constant_id = 8) const uint PREFETCH = 1;
// 1: Q and P as two f16 parts each, hi + lo (S = hi K^T + lo K^T, O += hi V + lo V): about f32's
// precision for twice the products.
layout(constant_id = 9) const uint QSPLIT = 0;

layout(push_constant) uniform Push {
  uint tokens; uint heads; uint kvHeads;
  uint capacity; uint window;  // window 0 = no window
  float scale; float softcap;  // softcap 0 = none
} pc;
layout(std430, binding = 0) readonly buffer Q { vec4 q[]; };
// 8 values of the cache: 8 halves, or 8 int8 (KV_Q8).
#if KV_Q8
#define KV8 uvec2
#else
#define KV8 uvec4
#endif
layout(std430, binding = 1) readonly buffer K { KV8 kc[]; };
layout(std430, binding = 2) readonly buffer V { KV8 vc[]; };
layout(std430, binding = 3) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) readonly buffer KS { float ks[]; };  // KV_Q8: [kvHeads, capacity, HD / 32]
layout(std430, binding = 6) readonly buffer VS { float vs[]; };

#if KV_Q8
// 8 int8 values times their block's scale, as 8 halves.
uvec4 halves8(uvec2 w, float scale) {
  const vec4 a = vec4(ivec4(uvec4(w.x) << uvec4(24u, 16u, 8u, 0u)) >> 24) * scale;
  const vec4 b = vec4(ivec4(uvec4(w.y) << uvec4(24u, 16u, 8u, 0u)) >> 24) * scale;
  return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
#endif

const uint BR = NSG * TM;
const uint WG = NSG * SG;
const uint ST = HD / 2u + 4u;  // shared row stride of Q, K and V in pairs of halves (16 bytes of padding)
const uint PST = BC + 8u;  // P's row stride in halves
const float THRESHOLD = 8.0;
// No infinities anywhere: Vulkan leaves Inf and NaN arithmetic to the implementation unless the device
// reports shaderSignedZeroInfNanPreserveFloat32 (and the shader asks for it). The reference starts at
// LOWEST, far below any score; a masked score is LOWEST too and never passes it; what it yields before a
// row sees its first position is nothing (P = 0 for masked scores, O and the sums stay 0).
const float LOWEST = -1e30;

// Every shared array is a whole number of 16 bytes. NVIDIA's driver 580 places them back to back without
// rounding up, and cooperative-matrix loads and stores from an array that does not start on 16 bytes
// compute wrong there (a 4-byte `ql` or 8-byte `moves` put every tiling's S off; lavapipe is fine).
shared f16vec2 kv[2u * BC * ST];  // K's BC rows, then V's
shared f16vec2 qs[BR * ST];
shared f16vec2 ql[QSPLIT * BR * ST + 4u * (1u - QSPLIT)];  // Q's lo parts (QSPLIT is 0 or 1)
shared float ss[BR * BC];  // each subgroup's S (TM x BC), then its O on the way through
shared float16_t ps[BR * PST];  // each subgroup's P
shared float16_t pl[QSPLIT * BR * PST + 8u * (1u - QSPLIT)];  // its lo parts (QSPLIT)
shared uint rowFirst[BR];  // the positions each row sees: [rowFirst, rowLast]
shared uint rowLast[BR];
shared float rowScale[BR];  // per row: the rescale factor, then 1 / the sum
shared uint moves[(NSG + 3u) / 4u * 4u];  // per subgroup: whether a score passed its row's reference by more than THRESHOLD

// What each invocation reads of one step, 8 halves at a time of keys and of values: into registers
// (LOADS of each, PREFETCH) or straight into shared memory.
// (PREFETCH is 0 or 1: one register of each without it.)
const uint LOADS = PREFETCH * ((BC * HD / 8u + WG - 1u) / WG) + 1u - PREFETCH;
uvec4 kr[LOADS], vr[LOADS];

// Key `key` of the step from j0, 8 halves from c * 8, of keys and values; zeros past the last position
// seen (the cache there may hold anything, NaN included, and P = 0 times NaN is NaN).
void load8(uint kvh, uint j0, uint last, uint key, uint c, out uvec4 k, out uvec4 v) {
  k = uvec4(0u);
  v = uvec4(0u);
  if (j0 + key <= last) {
#if KV_Q8
    const uint row = kvh * pc.capacity + (j0 + key) % pc.capacity;
    k = halves8(kc[row * (HD / 8u) + c], ks[row * (HD / 32u) + c / 4u]);
    v = halves8(vc[row * (HD / 8u) + c], vs[row * (HD / 32u) + c / 4u]);
#else
    const uint row = (kvh * pc.capacity + (j0 + key) % pc.capacity) * (HD / 8u) + c;
    k = kc[row];
    v = vc[row];
#endif
  }
}

void put8(uint key, uint c, uvec4 k, uvec4 v) {
  const uint ko = key * ST + c * 4u, vo = (BC + key) * ST + c * 4u;
  [[unroll]] for (uint h = 0; h < 4u; h++) {
    kv[ko + h] = unpackFloat2x16(k[h]);
    kv[vo + h] = unpackFloat2x16(v[h]);
  }
}

// Without PREFETCH: the step's keys and values straight into shared memory.
void loadStep(uint kvh, uint j0, uint last) {
  for (uint e = gl_LocalInvocationID.x; e < BC * HD / 8u; e += WG) {
    uvec4 k, v;
    load8(kvh, j0, last, e / (HD / 8u), e % (HD / 8u), k, v);
    put8(e / (HD / 8u), e % (HD / 8u), k, v);
  }
}

// With PREFETCH: the next step's into registers (fetch), then into shared memory (stash).
void fetch(uint kvh, uint j0, uint last) {
  [[unroll]] for (uint i = 0; i < LOADS; i++) {
    const uint e = gl_LocalInvocationID.x + i * WG;
    kr[i] = uvec4(0u);
    vr[i] = uvec4(0u);
    if (e < BC * HD / 8u) load8(kvh, j0, last, e / (HD / 8u), e % (HD / 8u), kr[i], vr[i]);
  }
}

void stash() {
  [[unroll]] for (uint i = 0; i < LOADS; i++) {
    const uint e = gl_LocalInvocationID.x + i * WG;
    if (e < BC * HD / 8u) put8(e / (HD / 8u), e % (HD / 8u), kr[i], vr[i]);
  }
}

void main() {
  const uint group = pc.heads / pc.kvHeads;
  const uint kvh = gl_WorkGroupID.y;
  const uint row0 = gl_WorkGroupID.x * BR;  // the block's first row (of tokens * group)
  const uint rows = pc.tokens * group;
  // The layout needs exactly the subgroups it was made for; attention-coop.ts's check sees a driver that runs others.
  if (gl_NumSubgroups != NSG || gl_SubgroupSize != SG) return;
  const uint sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint tid = gl_LocalInvocationID.x;

  // Each row's visible positions, and the block's span of them (the walk).
  uint lo = 0xFFFFFFFFu, hi = 0u;
  for (uint r = lane; r < BR; r += SG) {
    uint first = 0xFFFFFFFFu, last = 0u;
    if (row0 + r < rows) {
      last = pos[(row0 + r) / group];
      first = pc.window == 0u || last + 1u < pc.window ? 0u : last + 1u - pc.window;
      lo = min(lo, first);
      hi = max(hi, last);
    }
    if (sg == 0u) { rowFirst[r] = first; rowLast[r] = last; }
  }
  lo = subgroupMin(lo);
  hi = subgroupMax(hi);

  // Q, scaled, as f16 rows into shared memory.
  for (uint e = tid; e < BR * HD / 4u; e += WG) {
    const uint r = e / (HD / 4u), c = e % (HD / 4u);
    vec4 v = vec4(0.0);
    if (row0 + r < rows) {
      const uint R = row0 + r;
      v = q[((R / group) * pc.heads + kvh * group + R % group) * (HD / 4u) + c] * pc.scale;
    }
    const f16vec2 a = f16vec2(v.xy), b = f16vec2(v.zw);
    qs[r * ST + c * 2u] = a;
    qs[r * ST + c * 2u + 1u] = b;
  }
  // Q's lo parts: Q - hi, with hi read back from shared memory. (Computed from f16vec2(v) in registers,
  // the compilers, Mesa's and NVIDIA's, fold vec2(f16vec2(v)) back to v and the lo parts to 0.)
  if (QSPLIT != 0u) {
    barrier();
    for (uint e = tid; e < BR * HD / 4u; e += WG) {
      const uint r = e / (HD / 4u), c = e % (HD / 4u);
      vec4 v = vec4(0.0);
      if (row0 + r < rows) {
        const uint R = row0 + r;
        v = q[((R / group) * pc.heads + kvh * group + R % group) * (HD / 4u) + c] * pc.scale;
      }
      ql[r * ST + c * 2u] = f16vec2(v.xy - vec2(qs[r * ST + c * 2u]));
      ql[r * ST + c * 2u + 1u] = f16vec2(v.zw - vec2(qs[r * ST + c * 2u + 1u]));
    }
  }

  coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> oacc[HD / TN];
  [[unroll]] for (uint j = 0; j < HD / TN; j++) oacc[j] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);
  coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> sacc[BC / TN];
  coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA> qm, pm;  // Q's and P's matrices
  coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB> km, vm;  // K's and V's

  // Lane's elements of a TM x BC tile: element i is row (i * SG) / BC, column (i * SG) % BC + lane.
  const uint E = TM * BC / SG;
  float m[TM];  // the per-row reference, the same in every lane
  float l[TM];  // the lane's share of each row's sum
  [[unroll]] for (uint r = 0; r < TM; r++) { m[r] = LOWEST; l[r] = 0.0; }
  const uint sbase = sg * TM * BC;
  const uint pbase = sg * TM * PST;
  const uint rbase = sg * TM;

  if (PREFETCH != 0u) fetch(kvh, lo, hi);
  for (uint j0 = lo; j0 <= hi; j0 += BC) {
    barrier();  // everyone is done with the last step's keys and values (Q is in on the first)
    if (PREFETCH != 0u) stash();
    else loadStep(kvh, j0, hi);
    barrier();
    if (PREFETCH != 0u && j0 + BC <= hi) fetch(kvh, j0 + BC, hi);  // the next step's reads overlap this one's products

    // S = Q K^T: B[d][key] = K[key][d], so K's rows in shared memory are B's columns.
    [[unroll]] for (uint c = 0; c < BC / TN; c++) sacc[c] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);
    [[unroll]] for (uint d = 0; d < HD / TK; d++) {
      coopMatLoad(qm, qs, (sg * TM) * ST + d * TK / 2u, ST, gl_CooperativeMatrixLayoutRowMajor);
      [[unroll]] for (uint c = 0; c < BC / TN; c++) {
        coopMatLoad(km, kv, (c * TN) * ST + d * TK / 2u, ST, gl_CooperativeMatrixLayoutColumnMajor);
        sacc[c] = coopMatMulAdd(qm, km, sacc[c]);
      }
      if (QSPLIT != 0u) {
        coopMatLoad(qm, ql, (sg * TM) * ST + d * TK / 2u, ST, gl_CooperativeMatrixLayoutRowMajor);
        [[unroll]] for (uint c = 0; c < BC / TN; c++) {
          coopMatLoad(km, kv, (c * TN) * ST + d * TK / 2u, ST, gl_CooperativeMatrixLayoutColumnMajor);
          sacc[c] = coopMatMulAdd(qm, km, sacc[c]);
        }
      }
    }
    [[unroll]] for (uint c = 0; c < BC / TN; c++) coopMatStore(sacc[c], ss, sbase + c * TN, BC, gl_CooperativeMatrixLayoutRowMajor);
    subgroupBarrier();

    // The lane's scores, softcapped and masked; does any pass its row's reference by more than THRESHOLD?
    float sv[E];
    bool move = false;
    [[unroll]] for (uint i = 0; i < E; i++) {
      const uint r = (i * SG) / BC, col = (i * SG) % BC + lane;
      float s = ss[sbase + r * BC + col];
      if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -10.0, 10.0));
      const uint p = j0 + col;
      s = p >= rowFirst[rbase + r] && p <= rowLast[rbase + r] ? s : LOWEST;
      sv[i] = s;
      move = move || s > m[r] + THRESHOLD;
    }
    // Whether any subgroup moves its reference: the whole workgroup takes the rescale or none does
    // (subgroups apart in a branch of cooperative-matrix operations computed wrong on lavapipe).
    const bool mine = subgroupAny(move);
    if (subgroupElect()) moves[sg] = mine ? 1u : 0u;
    barrier();  // also: ss is free again, the rescale below passes O through it
    bool rescale = false;
    [[unroll]] for (uint i = 0; i < NSG; i++) rescale = rescale || moves[i] != 0u;
    if (rescale) {
      float mx[TM];
      [[unroll]] for (uint r = 0; r < TM; r++) mx[r] = LOWEST;
      [[unroll]] for (uint i = 0; i < E; i++) mx[(i * SG) / BC] = max(mx[(i * SG) / BC], sv[i]);
      [[unroll]] for (uint r = 0; r < TM; r++) {
        const float mNew = max(m[r], subgroupMax(mx[r]));
        const float alpha = exp(max(m[r] - mNew, -80.0));  // from LOWEST: 1.8e-35 times the zeros so far
        m[r] = mNew;
        l[r] *= alpha;
        if (lane == 0u) rowScale[rbase + r] = alpha;
      }
      subgroupBarrier();
      [[unroll]] for (uint j = 0; j < HD / TN; j++) {
        coopMatStore(oacc[j], ss, sbase, TN, gl_CooperativeMatrixLayoutRowMajor);
        subgroupBarrier();
        for (uint e = lane; e < TM * TN; e += SG) ss[sbase + e] *= rowScale[rbase + e / TN];
        subgroupBarrier();
        coopMatLoad(oacc[j], ss, sbase, TN, gl_CooperativeMatrixLayoutRowMajor);
        subgroupBarrier();
      }
    }

    // P = exp(S - m) in f16, and the lane's row sums (of P before rounding: on the H200 the 8B's KL was
    // 4.3e-4 with the sums of the rounded P, 3.6e-4 with these).
    [[unroll]] for (uint i = 0; i < E; i++) {
      const uint r = (i * SG) / BC, col = (i * SG) % BC + lane;
      // A score seen is at most m + THRESHOLD here (a row's first one moved m to it).
      sv[i] = sv[i] > LOWEST ? exp(sv[i] - m[r]) : 0.0;
      l[r] += sv[i];
      ps[pbase + r * PST + col] = float16_t(sv[i]);
    }
    // In two parts, the lo parts P - hi, hi read back after a workgroup barrier: computed from
    // float16_t(p) in registers, the compilers (Mesa's, NVIDIA's) fold float(float16_t(p)) back to p.
    if (QSPLIT != 0u) {
      barrier();
      [[unroll]] for (uint i = 0; i < E; i++) {
        const uint r = (i * SG) / BC, col = (i * SG) % BC + lane;
        pl[pbase + r * PST + col] = float16_t(sv[i] - float(ps[pbase + r * PST + col]));
      }
    }
    subgroupBarrier();

    // O += P V: V's rows in shared memory are B's rows.
    [[unroll]] for (uint k = 0; k < BC / TK; k++) {
      coopMatLoad(pm, ps, pbase + k * TK, PST, gl_CooperativeMatrixLayoutRowMajor);
      [[unroll]] for (uint j = 0; j < HD / TN; j++) {
        coopMatLoad(vm, kv, (BC + k * TK) * ST + j * TN / 2u, ST, gl_CooperativeMatrixLayoutRowMajor);
        oacc[j] = coopMatMulAdd(pm, vm, oacc[j]);
      }
      if (QSPLIT != 0u) {
        coopMatLoad(pm, pl, pbase + k * TK, PST, gl_CooperativeMatrixLayoutRowMajor);
        [[unroll]] for (uint j = 0; j < HD / TN; j++) {
          coopMatLoad(vm, kv, (BC + k * TK) * ST + j * TN / 2u, ST, gl_CooperativeMatrixLayoutRowMajor);
          oacc[j] = coopMatMulAdd(pm, vm, oacc[j]);
        }
      }
    }
  }

  // o = O / (the row's sum), out through shared memory one accumulator at a time.
  [[unroll]] for (uint r = 0; r < TM; r++) {
    const float sum = subgroupAdd(l[r]);
    if (lane == 0u) rowScale[rbase + r] = sum > 0.0 ? 1.0 / sum : 0.0;
  }
  subgroupBarrier();
  [[unroll]] for (uint j = 0; j < HD / TN; j++) {
    coopMatStore(oacc[j], ss, sbase, TN, gl_CooperativeMatrixLayoutRowMajor);
    subgroupBarrier();
    for (uint e = lane; e < TM * TN; e += SG) {
      const uint r = e / TN, R = row0 + rbase + r;
      if (R < rows) o[((R / group) * pc.heads + kvh * group + R % group) * HD + j * TN + e % TN] = ss[sbase + e] * rowScale[rbase + r];
    }
    subgroupBarrier();
  }
}
