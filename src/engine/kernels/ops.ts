/**
 * Host side of the single-purpose kernels: each records one dispatch into a Commands stream.
 * Kernels are created once per device and looked up by variant; descriptor sets are made when a
 * step is recorded, so a recorded decode step replays without touching them.
 */
import type { Commands } from '../vulkan/commands.js';
import type { Device } from '../vulkan/device.js';
import type { Handle } from '../vulkan/ffi.js';
import type { GpuBuffer } from '../vulkan/memory.js';
import { type Kernel, type KernelSpec, grid, kernelFor } from '../vulkan/pipeline.js';
import { type GpuMatrix, rowRanges } from './matvec.js';
import { type KernelFamily, type SubgroupChoice, checkSubgroupLayout, subgroupPlan } from './subgroups.js';
import { isEmbeddingFormat } from './weight-formats.js';
export type Activation = 'gelu_tanh' | 'silu';

const WG = 256;
const f32bits = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0]!;

export interface AttentionShape {
  readonly tokens: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Slots in the cache: the context length, or the window for a sliding layer's ring. */
  readonly capacity: number;
  /** Sliding window (positions visible, the query's own included); 0 = none. */
  readonly window: number;
  /** Positions the cache will ever hold (the context); a ring at least this long never wraps. */
  readonly positions?: number;
  readonly scale: number;
  /** Logit softcapping; 0 = none. */
  readonly softcap: number;
  /**
   * Workgroups sharing each (token, head)'s positions (flash-decoding); more than 1 needs `part`
   * scratch of tokens x heads x splits x (headDim + 2) floats. Default 1.
   */
  readonly splits?: number;
}

/** Positions per split that keep a decode step's attention busy: a split per 64 visible positions, at most 32. */
export function attentionSplits(visible: number): number {
  return Math.max(1, Math.min(32, Math.ceil(visible / 64)));
}

export class Ops {
  /** The subgroup size each family of these kernels runs at (kernels/subgroups.ts). */
  readonly subgroups: Record<KernelFamily, SubgroupChoice>;

  constructor(readonly device: Device) {
    checkSubgroupLayout(device);
    this.subgroups = subgroupPlan(device.info);
  }

  /** The spec fields that make a family's kernel run at its subgroup size. */
  private sized(family: KernelFamily): { subgroupSize?: number } {
    const c = this.subgroups[family];
    return c.required ? { subgroupSize: c.size } : {};
  }

  private kernel(spec: KernelSpec): Kernel {
    return kernelFor(this.device, spec);
  }

  /** One dispatch of `groups` workgroups (split into a 2-D grid past the device's x limit). */
  private dispatch(cmds: Commands, k: Kernel, buffers: readonly GpuBuffer[], push: Uint32Array, groups: number): void {
    const set: Handle = k.bind(buffers.map((buffer) => ({ buffer })));
    cmds.dispatch(k, set, push, grid(groups, this.device.info.maxComputeWorkGroupCount[0]!));
  }

  /**
   * y = x / rms(x) * (offset + w) over `rows` rows of `n`; y may be x. With `add`, y += that (y not x).
   * With `next` (and `add`), then also next.out = y / rms(y) * (offset + next.w) in the same dispatch
   * (next.out may be x): a residual stream's post-norm added in and the norm that reads it next.
   * With `quant` (one row of a multiple of 32 values, at most maxQuantRow), the output (next.out with
   * `next`, else y) is also written as int8 activations in both byte orders (what MatVec.quantizeX would make).
   */
  rmsnorm(cmds: Commands, x: GpuBuffer, w: GpuBuffer, y: GpuBuffer, rows: number, n: number, eps: number, offset: 0 | 1, opts: { add?: boolean; quant?: { q8: GpuBuffer; q4: GpuBuffer; s: GpuBuffer }; next?: { w: GpuBuffer; out: GpuBuffer } } = {}): void {
    const { add = false, quant, next } = opts;
    if (add && x === y) throw new RangeError('rmsnorm with add: y must not be x');
    if (next !== undefined && (!add || next.out === y)) throw new RangeError('rmsnorm: the next norm follows an add, into a buffer other than y');
    if (quant !== undefined && (rows !== 1 || n % 32 !== 0 || n > this.maxQuantRow)) throw new RangeError(`rmsnorm: int8 output needs one row of a multiple of 32 values up to ${this.maxQuantRow}`);
    // One workgroup per row, wide enough that each invocation handles about 4 values: a decode step's
    // norm is one row of thousands (a narrow workgroup was latency-bound: 30-60 µs on the H100), the
    // per-head q/k norms are many short rows.
    const width = Math.min(512, this.device.info.maxComputeWorkGroupInvocations, Math.max(32, this.subgroups.norm.size, 2 ** Math.ceil(Math.log2(Math.max(1, n / 4)))));
    const k = this.kernel({ variant: 'rmsnorm', bindings: 8, pushBytes: 16, spec: [width, add ? 1 : 0, quant === undefined ? 0 : 1, quant === undefined ? 1 : n, next === undefined ? 0 : 1], ...this.sized('norm') });
    const q = quant ?? { q8: x, q4: x, s: x };
    this.dispatch(cmds, k, [x, w, y, q.q8, q.q4, q.s, next?.w ?? w, next?.out ?? y], new Uint32Array([rows, n, f32bits(eps), f32bits(offset)]), rows);
  }

  /** The longest row rmsnorm can also quantize: it stages the row and its block scales in shared memory (beside 2 KiB of partial sums). */
  get maxQuantRow(): number {
    return Math.floor((this.device.info.maxComputeSharedMemorySize - 2048) / (4 + 4 / 32) / 32) * 32;
  }

  /**
   * Rotary embedding of q [tokens, heads, d] in place and of k [tokens, kvHeads, d], k and v stored
   * into the f16 caches [kvHeads, capacity, d] at position % capacity, in one dispatch (table: the
   * (cos, sin) rows of the tokens' positions). With `norm`, each head of q and k is first RMS-normed
   * with its weight (Gemma 3's q_norm / k_norm; q keeps the normed, rotated values). At most
   * `capacity` tokens at once: more would write one slot twice in the same dispatch (a race); a
   * sliding layer prefills in chunks that fit (see attention()).
   */
  ropeStore(cmds: Commands, q: GpuBuffer, k: GpuBuffer, v: GpuBuffer, table: GpuBuffer, positions: GpuBuffer, kCache: GpuBuffer, vCache: GpuBuffer,
    s: { tokens: number; heads: number; kvHeads: number; headDim: number; capacity: number }, norm?: { q: GpuBuffer; k: GpuBuffer; eps: number; offset: 0 | 1 }): void {
    if (s.tokens > s.capacity) throw new RangeError(`kv store: ${s.tokens} tokens at once overflow a cache of ${s.capacity} slots; store in chunks of at most ${s.capacity}`);
    if (s.headDim % 4 !== 0 || s.headDim / 4 > this.device.info.maxComputeWorkGroupInvocations) throw new RangeError(`rope_store: head_dim ${s.headDim} must be a multiple of 4, at most ${4 * this.device.info.maxComputeWorkGroupInvocations}`);
    const kernel = this.kernel({ variant: 'rope_store', bindings: 9, pushBytes: 28, spec: [s.headDim / 4, norm === undefined ? 0 : 1] });
    const push = new Uint32Array([s.tokens, s.heads, s.kvHeads, s.headDim, s.capacity, f32bits(norm?.eps ?? 0), f32bits(norm?.offset ?? 0)]);
    this.dispatch(cmds, kernel, [q, k, v, table, positions, kCache, vCache, norm?.q ?? table, norm?.k ?? table], push, s.tokens * (s.heads + 2 * s.kvHeads));
  }

  /** out = act(gate) * up over n values. */
  gated(cmds: Commands, act: Activation, gate: GpuBuffer, up: GpuBuffer, out: GpuBuffer, n: number): void {
    const k = this.kernel({ variant: act === 'gelu_tanh' ? 'gated_gelu_tanh' : 'gated_silu', bindings: 3, pushBytes: 4, spec: [WG] });
    this.dispatch(cmds, k, [gate, up, out], new Uint32Array([n]), Math.min(Math.ceil(n / WG), 4096));
  }

  /** y = a + b over n values; y may be a. With bn < n, b repeats every bn values (a bias per row). */
  add(cmds: Commands, a: GpuBuffer, b: GpuBuffer, y: GpuBuffer, n: number, bn = n): void {
    const k = this.kernel({ variant: 'add', bindings: 3, pushBytes: 8, spec: [WG] });
    this.dispatch(cmds, k, [a, b, y], new Uint32Array([n, bn]), Math.min(Math.ceil(n / WG), 4096));
  }

  /** x = cap * tanh(x / cap) over n values, in place. */
  softcap(cmds: Commands, x: GpuBuffer, n: number, cap: number): void {
    const k = this.kernel({ variant: 'softcap', bindings: 1, pushBytes: 8, spec: [WG] });
    this.dispatch(cmds, k, [x], new Uint32Array([n, f32bits(cap)]), Math.min(Math.ceil(n / WG), 4096));
  }

  /**
   * out[t] = table[ids[t]] * scale (INT8 tables: times the row's scale, the matrix's params). A table
   * past the device's storage-buffer range or allocation size goes in row ranges, a dispatch each,
   * each writing the tokens whose ids it holds.
   */
  embed(cmds: Commands, table: GpuMatrix, ids: GpuBuffer, out: GpuBuffer, tokens: number, scale: number, opts: { maxRange?: number } = {}): void {
    const format = table.format;
    if (!isEmbeddingFormat(format)) throw new RangeError(`embed: ${format} tables are not supported`);
    const k = this.kernel({ variant: `embed_${format}`, bindings: 4, pushBytes: 24, spec: [WG] });
    for (const r of rowRanges(table, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange))) {
      const set = k.bind([
        { buffer: r.w, offset: r.wOffset, size: r.wBytes },
        r.params === null ? { buffer: r.w, offset: r.wOffset, size: Math.min(r.wBytes, 16) } : { buffer: r.params, offset: r.pOffset, size: r.pBytes },
        { buffer: ids }, { buffer: out },
      ]);
      // Workgroup y is the token (embed.comp reads gl_WorkGroupID.y), so no 2-D grid splitting here.
      cmds.dispatch(k, set, new Uint32Array([tokens, table.cols, f32bits(scale), table.rows, r.start, r.rows]), [Math.min(Math.ceil(table.cols / WG), 64), tokens]);
    }
  }

  /**
   * o [tokens, heads, headDim] = softmax(q k^T) v over the cache, causal, windowed, softcapped.
   * The keys of all `tokens` queries must be in the cache at once: a sliding layer's ring needs
   * capacity >= window + tokens - 1, so a long prompt is prefilled in chunks of at most
   * capacity - window + 1 tokens (store the chunk's keys, then attend).
   * With `quant` and more than one split (the combine pass runs) and a head_dim that is a multiple
   * of 32, o is also written as int8 activations (what MatVec.quantizeX would make of it); returns
   * whether it was.
   */
  attention(cmds: Commands, q: GpuBuffer, kCache: GpuBuffer, vCache: GpuBuffer, positions: GpuBuffer, o: GpuBuffer, s: AttentionShape, part?: GpuBuffer, quant?: { q8: GpuBuffer; q4: GpuBuffer; s: GpuBuffer }): boolean {
    if (s.window > 0 && s.capacity < (s.positions ?? Infinity) && s.capacity < s.window + s.tokens - 1) {
      throw new RangeError(`attention: ${s.tokens} queries with a window of ${s.window} need ${s.window + s.tokens - 1} cache slots, the ring has ${s.capacity}; prefill in chunks of at most ${s.capacity - s.window + 1}`);
    }
    if (s.headDim > 256 || s.headDim % 2 !== 0) throw new RangeError(`attention: head_dim ${s.headDim} must be even and at most 256`);
    const splits = s.splits ?? 1;
    const rows = s.tokens * s.heads;
    if (splits > 1 && (part === undefined || part.size < rows * splits * (s.headDim + 2) * 4)) throw new RangeError(`attention: ${splits} splits need a scratch buffer of ${rows * splits * (s.headDim + 2) * 4} bytes`);
    // At most 16 subgroups a workgroup (attention.comp's shared arrays), 128 invocations.
    const sg = this.subgroups.attention.size;
    const k = this.kernel({ variant: 'attention', bindings: 6, pushBytes: 36, spec: [Math.min(128, 16 * sg, this.device.info.maxComputeWorkGroupInvocations), 256, sg], ...this.sized('attention') });
    const push = new Uint32Array([s.tokens, s.heads, s.kvHeads, s.headDim, s.capacity, s.window, f32bits(s.scale), f32bits(s.softcap), splits]);
    this.dispatch(cmds, k, [q, kCache, vCache, positions, o, part ?? o], push, rows * splits);
    if (splits === 1) return false;
    cmds.barrier();
    const qz = quant !== undefined && s.headDim % 32 === 0 ? quant : undefined;
    const c = this.kernel({ variant: 'attention_combine', bindings: 5, pushBytes: 12, spec: [Math.min(128, s.headDim), qz === undefined ? 0 : 1] });
    this.dispatch(cmds, c, [part!, o, ...(qz === undefined ? [o, o, o] : [qz.q8, qz.q4, qz.s])], new Uint32Array([rows, s.headDim, splits]), rows);
    return qz !== undefined;
  }

  /** out[outIndex] = index of the largest of x's first n values. */
  argmax(cmds: Commands, x: GpuBuffer, out: GpuBuffer, n: number, outIndex = 0): void {
    const k = this.kernel({ variant: 'argmax', bindings: 2, pushBytes: 8, spec: [Math.min(1024, this.device.info.maxComputeWorkGroupInvocations)], ...this.sized('sampling') });
    this.dispatch(cmds, k, [x, out], new Uint32Array([n, outIndex]), 1);
  }

  /**
   * The k largest of x's first n values: indices and values into outIdx / outVal [k], in no order
   * (sortTopK orders them); ties at the k-th value go to the lowest indices. Past TOPK_SLICE values,
   * with `scratch` (topkScratchBytes), slices of the vocabulary run in parallel and one workgroup
   * picks among their candidates.
   */
  topk(cmds: Commands, x: GpuBuffer, outIdx: GpuBuffer, outVal: GpuBuffer, n: number, k: number, scratch?: { idx: GpuBuffer; val: GpuBuffer }): void {
    if (k < 1 || k > n) throw new RangeError(`top-k: k = ${k} must be between 1 and ${n}`);
    // A GPU runs 1,024 invocations side by side. A CPU driver (lavapipe) steps through every
    // invocation at each of the ~90 barriers, so there the workgroup is as small as its loops allow:
    // at most 256 values per invocation per round (llvmpipe stops a shader's loops after 65,535
    // iterations in all, and a workgroup makes about 50 rounds over its values).
    const topkKernel = (count: number) => {
      const max = Math.min(1024, this.device.info.maxComputeWorkGroupInvocations);
      const width = this.device.info.type !== 'cpu' ? max : Math.min(max, Math.max(32, this.subgroups.sampling.size, 2 ** Math.ceil(Math.log2(Math.max(1, count / 256)))));
      return this.kernel({ variant: 'topk', bindings: 4, pushBytes: 20, spec: [width], ...this.sized('sampling') });
    };
    const slice = Math.max(Ops.TOPK_SLICE, 4 * k);
    const groups = Math.ceil(n / slice);
    if (groups === 1 || scratch === undefined) {
      this.dispatch(cmds, topkKernel(n), [x, outIdx, outVal, x], new Uint32Array([n, k, n, 0, n]), 1);
      return;
    }
    if (scratch.idx.size < groups * k * 4 || scratch.val.size < groups * k * 4) throw new RangeError(`top-k: scratch for ${groups * k} candidates is too small`);
    const first = topkKernel(slice);
    cmds.dispatch(first, first.bind([x, scratch.idx, scratch.val, x].map((buffer) => ({ buffer }))), new Uint32Array([n, k, slice, 0, n]), [groups, 1]);
    cmds.barrier();
    this.dispatch(cmds, topkKernel(groups * k), [scratch.val, outIdx, outVal, scratch.idx], new Uint32Array([groups * k, k, groups * k, 1, n]), 1);
  }

  static readonly TOPK_SLICE = 4096;

  /** Scratch bytes (each of idx and val) for topk over n values with k up to maxK. */
  static topkScratchBytes(n: number, maxK: number): number {
    return Math.ceil(n / Ops.TOPK_SLICE) * maxK * 4;
  }
}

/** Orders top-k pairs by value, largest first, then by index (as torch.topk does on ties). */
export function sortTopK(idx: Uint32Array, val: Float32Array): { indices: number[]; values: number[] } {
  const order = [...idx.keys()].sort((a, b) => val[b]! - val[a]! || idx[a]! - idx[b]!);
  return { indices: order.map((i) => idx[i]!), values: order.map((i) => val[i]!) };
}
