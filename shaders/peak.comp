#version 450
// The compute baselines of the matmul benchmark (bench/matmul.ts), no memory traffic but one write:
// FMA: f32 fused multiply-adds, 8 independent chains per invocation; COOP: f16 x f16 -> f32
// cooperative-matrix products of the device's TM x TN x TK shape, 4 independent accumulators per
// subgroup. Each iteration is 8 FMAs (16 flops) per invocation, or 4 products (8 TM TN TK flops) per subgroup.
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_control_flow_attributes : require
#if defined(COOP)
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TM = 16;
layout(constant_id = 2) const uint TN = 16;
layout(constant_id = 3) const uint TK = 16;
layout(push_constant) uniform Push { uint iterations; float seed; } pc;
layout(std430, binding = 0) writeonly buffer Output { float o[]; };
#if defined(COOP)
shared float Cs[TM * TN];
#endif

void main() {
#if defined(FMA)
  float a[8];
  [[unroll]] for (uint i = 0; i < 8u; i++) a[i] = pc.seed * float(gl_LocalInvocationID.x + i);
  const float m = 1.0 - pc.seed, c = pc.seed;
  for (uint it = 0; it < pc.iterations; it++) {
    [[unroll]] for (uint i = 0; i < 8u; i++) a[i] = fma(a[i], m, c);
  }
  float s = 0.0;
  [[unroll]] for (uint i = 0; i < 8u; i++) s += a[i];
  o[gl_GlobalInvocationID.x] = s;
#elif defined(COOP)
  coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA> a = coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA>(float16_t(pc.seed));
  coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB> b = coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB>(float16_t(pc.seed));
  coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> c[4];
  [[unroll]] for (uint i = 0; i < 4u; i++) c[i] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(float(i));
  for (uint it = 0; it < pc.iterations; it++) {
    [[unroll]] for (uint i = 0; i < 4u; i++) c[i] = coopMatMulAdd(a, b, c[i]);
  }
  [[unroll]] for (uint i = 1; i < 4u; i++) c[0] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(c[0] + c[i]);
  if (gl_SubgroupID == 0u) {
    coopMatStore(c[0], Cs, 0, TM, gl_CooperativeMatrixLayoutColumnMajor);
  }
  barrier();
  if (gl_LocalInvocationID.x == 0u) o[gl_WorkGroupID.x] = Cs[0];
#else
#error "define FMA or COOP"
#endif
}
