/**
 * Every compute kernel, one entry each: its GLSL source in shaders/, its variant axes (the defines
 * that select, e.g., the weight format: each combination is one SPIR-V file in shaders/spv), its
 * storage buffers by name in binding order, its push-constant fields in order, and its
 * specialization constants in constant_id order. Three readers:
 * - scripts/build-shaders.mjs expands the variants (name, source, defines) and compiles each; it
 *   imports this module's compiled copy (dist/src/engine/kernels/table.js, so `npx tsc` first),
 *   the same code the runtime runs, rather than a second list of its own;
 * - vulkan/pipeline.ts makes a kernel from an entry (`kernelFor`): the descriptor layout, the push
 *   range and the specialization map come from here, and call sites bind buffers, push constants and
 *   spec constants by these names, typed from the entry (a missing or misspelled name does not compile);
 * - test/shaders/kernels.test.ts parses every source (and what it includes) and fails where the
 *   shader's `binding =`, `constant_id =` or push-constant block differ from the entry.
 * Names follow the shaders: a binding is named as the shader's buffer array (`buffer Weights { uvec4
 * w[]; }` is `w`), a spec constant as its GLSL name in camelCase (`QUANT_OUT` is `quantOut`), and
 * `local_size_x_id = 0` is `workgroup`. docs/CONTRIBUTING.md says how to add a kernel or a variant.
 */
import { EMBEDDING_FORMATS, INT8_FORMATS, WEIGHT_FORMATS, WEIGHT_FORMAT_NAMES } from './weight-formats.js';

/** glslc flags of every variant. */
export const SHADER_FLAGS = ['-O', '--target-env=vulkan1.2'] as const;
/**
 * The compiler every variant is built with (the first line of `glslc --version`): shaderc 2025.2, the
 * first Debian's glslc with GL_KHR_cooperative_matrix (Debian 13's; scripts/glslc.sh fetches it).
 */
export const SHADER_COMPILER = 'shaderc 2025.2';

/** A push-constant field: 4 bytes, a u32 or an f32 (written as its bits). */
export type PushType = 'u32' | 'f32';

/** Axis name -> the values it takes; every combination is a variant. */
export type Axes = Readonly<Record<string, readonly string[]>>;
/** One value per axis: which variant. */
export type AxisValues<A extends Axes> = { readonly [K in keyof A]: A[K][number] };

/** One SPIR-V file: shaders/spv/<name>.spv, compiled from the kernel's source with these defines. */
export interface Variant {
  readonly name: string;
  readonly defines: Readonly<Record<string, string>>;
}

export interface KernelDef<A extends Axes = Axes, B extends string = string, P extends string = string, S extends string = string> {
  /** The GLSL source, in shaders/. */
  readonly source: string;
  /** The variant axes; none: one variant, named as the kernel, without defines. */
  readonly axes?: A;
  /** A variant's name and defines from one value per axis (defines in the order glslc gets them). */
  variant?(v: AxisValues<A>): Variant;
  /** Storage buffers, binding 0, 1, ... */
  readonly bindings: readonly B[];
  /** Push-constant fields in order (an object's keys keep their order). */
  readonly push: { readonly [K in P]: PushType };
  /** Specialization constants, constant_id 0, 1, ... (`workgroup`: local_size_x_id = 0). */
  readonly spec: readonly S[];
}

/** Typed entry: the names of an entry's axes, bindings, push fields and constants stay literal types. */
function kernel<const A extends Axes, const B extends string, const P extends string, const S extends string>(d: KernelDef<A, B, P, S>): KernelDef<A, B, P, S> {
  return d;
}

const on = (define: string) => ({ [define]: '1' });

/** The matrix x vector kernels' interface, shared by the float-x and the int8-x kernels (shaders/matvec_base.glsl). */
const MATVEC = {
  bindings: ['w', 'params', 'x', 'y', 'w2', 'params2', 'bias', 'xScales', 'count', 'xq8', 'xq4', 'xs'],
  push: { rows: 'u32', cols: 'u32', yOffset: 'u32' },
  spec: ['workgroup', 'threads', 'group', 'rows', 'glu', 'bias', 'accumulate', 'unroll', 'quantOut'],
} as const;

/**
 * The KV cache's storage (models/memory.ts KvCacheType): f16, or q8 (int8 in blocks of 32 with an f32
 * scale a block, in the ks / vs buffers beside the cache; KV_Q8). The f16 variant keeps the kernel's name.
 */
const KV_AXES = { cache: ['f16', 'q8'] } as const;
const kvVariant = (name: string, cache: 'f16' | 'q8'): Variant => (cache === 'f16' ? { name, defines: {} } : { name: `${name}_q8`, defines: on('KV_Q8') });

export const KERNELS = {
  /** y = W x (decode) with float x, per weight format; fused gated MLP input, bias, residual add, int8 output. */
  matvec: kernel({
    source: 'matvec.comp',
    axes: { format: WEIGHT_FORMAT_NAMES },
    variant: ({ format }) => ({ name: `matvec_${format}`, defines: on(WEIGHT_FORMATS[format].define) }),
    ...MATVEC,
  }),
  /** y = W x with int8 x (integer dot products), for the formats that take int8 activations. */
  matvec_dot: kernel({
    source: 'matvec_dot.comp',
    axes: { format: INT8_FORMATS },
    variant: ({ format }) => ({ name: `matvec_${format}_dot`, defines: on(WEIGHT_FORMATS[format].define) }),
    ...MATVEC,
  }),
  /** Y = X W^T (prefill), per weight format; tiled in shared memory, or direct (CPU drivers). */
  matmul: kernel({
    source: 'matmul.comp',
    axes: { tiling: ['tiled', 'direct'], format: WEIGHT_FORMAT_NAMES },
    variant: ({ tiling, format }) => ({
      name: `matmul_${tiling === 'direct' ? 'direct_' : ''}${format}`,
      defines: { ...on(WEIGHT_FORMATS[format].define), ...(tiling === 'direct' ? on('DIRECT') : {}) },
    }),
    bindings: ['w', 'params', 'x', 'y'],
    push: { rows: 'u32', cols: 'u32', tokens: 'u32', yOffset: 'u32', yStride: 'u32' },
    spec: ['group'],
  }),
  /** Y = X W^T (prefill) on cooperative matrices (f16 x f16 -> f32), per weight format; tile shapes as spec constants. */
  matmul_coop: kernel({
    source: 'matmul_coop.comp',
    axes: { format: WEIGHT_FORMAT_NAMES },
    variant: ({ format }) => ({ name: `matmul_coop_${format}`, defines: on(WEIGHT_FORMATS[format].define) }),
    bindings: ['w', 'params', 'x', 'y'],
    push: { rows: 'u32', cols: 'u32', tokens: 'u32', yOffset: 'u32', yStride: 'u32' },
    spec: ['workgroup', 'tm', 'tn', 'tk', 'bm', 'bn', 'wm', 'wn', 'group', 'sg'],
  }),
  /** x [cols] -> int8 activations per block of 32, both byte orders (shaders/quant_act.glsl). */
  quantize_x: kernel({
    source: 'quantize_x.comp',
    bindings: ['x', 'xq8', 'xq4', 'xs'],
    push: { blocks: 'u32' },
    spec: [],
  }),
  /** Embedding rows by token id, scaled; per table format. */
  embed: kernel({
    source: 'embed.comp',
    axes: { format: EMBEDDING_FORMATS },
    variant: ({ format }) => ({ name: `embed_${format}`, defines: on(WEIGHT_FORMATS[format].embedDefine) }),
    bindings: ['table', 'rowScale', 'ids', 'o'],
    push: { tokens: 'u32', hidden: 'u32', scale: 'f32', vocab: 'u32', rowStart: 'u32', rows: 'u32' },
    spec: ['workgroup'],
  }),
  /** RMSNorm over rows; added into a residual stream, with the next norm, with int8 output. */
  rmsnorm: kernel({
    source: 'rmsnorm.comp',
    bindings: ['x', 'w', 'y', 'xq8', 'xq4', 'xs', 'w2', 'outp'],
    push: { rows: 'u32', n: 'u32', eps: 'f32', offset: 'f32' },
    spec: ['workgroup', 'add', 'quant', 'maxn', 'next', 'per'],
  }),
  /** RoPE of q and k (each head RMS-normed first with NORM), k and v into the caches, per cache type. */
  rope_store: kernel({
    source: 'rope_store.comp',
    axes: KV_AXES,
    variant: ({ cache }) => kvVariant('rope_store', cache),
    bindings: ['q', 'k', 'v', 'cs', 'pos', 'kc', 'vc', 'qn', 'kn', 'ks', 'vs'],
    push: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', capacity: 'u32', eps: 'f32', offset: 'f32' },
    spec: ['workgroup', 'norm'],
  }),
  /** Attention over the KV cache, causal, windowed, softcapped, split over workgroups; per cache type. */
  attention: kernel({
    source: 'attention.comp',
    axes: KV_AXES,
    variant: ({ cache }) => kvVariant('attention', cache),
    bindings: ['q', 'kc', 'vc', 'pos', 'o', 'part', 'ks', 'vs'],
    push: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', capacity: 'u32', window: 'u32', scale: 'f32', softcap: 'f32', splits: 'u32' },
    spec: ['workgroup', 'maxD', 'sgSize'],
  }),
  /** Decode attention with the query heads of a kv head folded into one workgroup (each key and value row read once for them). */
  attention_decode: kernel({
    source: 'attention_decode.comp',
    axes: KV_AXES,
    variant: ({ cache }) => kvVariant('attention_decode', cache),
    bindings: ['q', 'kc', 'vc', 'pos', 'o', 'part', 'ks', 'vs'],
    push: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', capacity: 'u32', window: 'u32', scale: 'f32', softcap: 'f32', splits: 'u32' },
    spec: ['workgroup', 'sg', 'hd', 'g', 'nsg'],
  }),
  /** Flash attention for a prompt batch on cooperative matrices (f16 x f16 -> f32); tiles as spec constants; per cache type. */
  attention_coop: kernel({
    source: 'attention_coop.comp',
    axes: KV_AXES,
    variant: ({ cache }) => kvVariant('attention_coop', cache),
    bindings: ['q', 'kc', 'vc', 'pos', 'o', 'ks', 'vs'],
    push: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', capacity: 'u32', window: 'u32', scale: 'f32', softcap: 'f32' },
    spec: ['workgroup', 'tm', 'tn', 'tk', 'nsg', 'bc', 'hd', 'sg', 'prefetch', 'qsplit'],
  }),
  /** Attention's splits combined (flash-decoding), with int8 output. */
  attention_combine: kernel({
    source: 'attention_combine.comp',
    bindings: ['part', 'o', 'xq8', 'xq4', 'xs'],
    push: { rows: 'u32', headDim: 'u32', splits: 'u32' },
    spec: ['workgroup', 'quant'],
  }),
  /** out = act(gate) * up, per activation. */
  gated_act: kernel({
    source: 'gated_act.comp',
    axes: { act: ['gelu_tanh', 'silu'] },
    variant: ({ act }) => ({ name: `gated_${act}`, defines: on(`ACT_${act.toUpperCase()}`) }),
    bindings: ['g', 'u', 'o'],
    push: { n: 'u32' },
    spec: ['workgroup'],
  }),
  /** y = a + b (b repeating every bn values). */
  add: kernel({
    source: 'add.comp',
    bindings: ['a', 'b', 'y'],
    push: { n: 'u32', bn: 'u32' },
    spec: ['workgroup'],
  }),
  /** x = cap * tanh(x / cap), in place. */
  softcap: kernel({
    source: 'softcap.comp',
    bindings: ['x'],
    push: { n: 'u32', cap: 'f32' },
    spec: ['workgroup'],
  }),
  /** The index of the largest value. */
  argmax: kernel({
    source: 'argmax.comp',
    bindings: ['x', 'outIds'],
    push: { n: 'u32', outIndex: 'u32' },
    spec: ['workgroup'],
  }),
  /** The k largest values and their indices, over slices of the vocabulary or their candidates. */
  topk: kernel({
    source: 'topk.comp',
    bindings: ['x', 'outIdx', 'outVal', 'inIdx'],
    push: { n: 'u32', k: 'u32', slice: 'u32', indirect: 'u32', idxEnd: 'u32' },
    spec: ['workgroup'],
  }),
  /** A device-local copy: the bandwidth baseline of benchmarks and doctor. */
  copy: kernel({
    source: 'copy.comp',
    bindings: ['src', 'dst'],
    push: { n: 'u32' },
    spec: ['workgroup'],
  }),
  /** The compute baselines of bench/matmul.ts: f32 FMA chains, or cooperative-matrix products. */
  peak: kernel({
    source: 'peak.comp',
    axes: { unit: ['fma', 'coop'] },
    variant: ({ unit }) => ({ name: `peak_${unit}`, defines: on(unit.toUpperCase()) }),
    bindings: ['o'],
    push: { iterations: 'u32', seed: 'f32' },
    spec: ['workgroup', 'tm', 'tn', 'tk'],
  }),
  /** Each invocation's view of its subgroup (kernels/subgroups.ts). */
  subgroup_probe: kernel({
    source: 'subgroup_probe.comp',
    bindings: ['o'],
    push: {},
    spec: ['workgroup'],
  }),
} as const;

export type KernelName = keyof typeof KERNELS;

/** Every combination of an entry's axis values, the first axis outermost. */
export function axisCombinations<A extends Axes>(axes: A | undefined): AxisValues<A>[] {
  let out: Record<string, string>[] = [{}];
  for (const [axis, values] of Object.entries(axes ?? {})) out = out.flatMap((o) => values.map((v) => ({ ...o, [axis]: v })));
  return out as AxisValues<A>[];
}

/** The variant of an entry for one value per axis (the kernel's own name when it has no axes). */
export function variantOf<A extends Axes>(name: string, def: KernelDef<A, string, string, string>, values: AxisValues<A>): Variant {
  return def.variant === undefined ? { name, defines: {} } : def.variant(values);
}

/** Every variant of every kernel, with its source: what scripts/build-shaders.mjs compiles. */
export function shaderVariants(): (Variant & { readonly kernel: KernelName; readonly source: string })[] {
  return (Object.entries(KERNELS) as [KernelName, KernelDef][]).flatMap(([name, def]) =>
    axisCombinations(def.axes).map((v) => ({ kernel: name, source: def.source, ...variantOf(name, def, v) })),
  );
}
