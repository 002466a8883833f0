/**
 * Host side of the single-purpose kernels (entries of table.ts): each records one dispatch into a
 * Commands stream, binding buffers, push constants and spec constants by the table's names.
 * Kernels are created once per device and looked up by variant; descriptor sets are made when a
 * step is recorded, so a recorded decode step replays without touching them.
 */
import { Commands } from '../vulkan/commands.js';
import type { Device } from '../vulkan/device.js';
import { Allocator, type GpuBuffer } from '../vulkan/memory.js';
import { download, upload, uploadNew } from '../vulkan/transfer.js';
import { attentionRef, checkValues, f16Bytes, q8Encode, roundKv } from './reference.js';
import { type Binding, type Kernel, grid, kernelFor } from '../vulkan/pipeline.js';
import { type GpuMatrix, rowRanges } from './matvec.js';
import { type KernelFamily, type SubgroupChoice, checkSubgroupLayout, subgroupPlan } from './subgroups.js';
import { KERNELS } from './table.js';
import { UnicornError } from '../errors.js';
import { isEmbeddingFormat } from './weight-formats.js';
import type { Activation } from '../models/spec.js';
import { type KvCacheType, kvValueBytes, takesKvCache } from '../models/memory.js';

const WG = 256;

/** Refuses a cache type the head_dim does not take (q8 blocks are 32 values of a head's row). */
function checkKvType(type: KvCacheType, headDim: number): void {
  if (!takesKvCache(headDim, type)) throw new RangeError(`a q8 KV cache needs head_dim a multiple of 32, not ${headDim}`);
}

/** What each device's check of the folded decode kernel found, by group, head_dim and subgroups (undefined: right). */
const foldedChecked = new WeakMap<Device, Map<string, string | undefined>>();

/**
 * A layer's KV cache as the kernels bind it, [kvHeads, capacity, headDim] each of keys and values: f16,
 * or q8 (int8 values, with ks / vs the f32 scale of each block of 32 values of a head's row).
 */
export interface KvBuffers {
  readonly type: KvCacheType;
  readonly k: GpuBuffer;
  readonly v: GpuBuffer;
  /** q8: the key and value blocks' scales; null for f16. */
  readonly scales: { readonly k: GpuBuffer; readonly v: GpuBuffer } | null;
}

/** The bindings of a cache (an f16 cache binds its own buffers where the kernels declare the unused scales). */
export function kvBindings(c: KvBuffers): { kc: GpuBuffer; vc: GpuBuffer; ks: GpuBuffer; vs: GpuBuffer } {
  if ((c.type === 'q8') !== (c.scales !== null)) throw new RangeError(`a ${c.type} cache ${c.scales === null ? 'without' : 'with'} scales`);
  return { kc: c.k, vc: c.v, ks: c.scales?.k ?? c.k, vs: c.scales?.v ?? c.v };
}

/** The bytes a cache of this type holds for rows of f32 values: the values, and the q8 blocks' scales. */
export function kvEncode(x: Float32Array, type: KvCacheType): { values: Uint8Array; scales: Uint8Array | null } {
  if (type === 'f16') return { values: f16Bytes(x), scales: null };
  const e = q8Encode(x);
  return { values: new Uint8Array(e.values.buffer), scales: new Uint8Array(e.scales.buffer) };
}

/** Keys and values ([kvHeads, capacity, headDim] f32) uploaded as a cache of this type holds them (checks and tests); free with freeKv. */
export function uploadKv(alloc: Allocator, cmds: Commands, k: Float32Array, v: Float32Array, type: KvCacheType, label: string): KvBuffers {
  const ek = kvEncode(k, type);
  const ev = kvEncode(v, type);
  return {
    type,
    k: uploadNew(alloc, cmds, ek.values, `${label} keys`),
    v: uploadNew(alloc, cmds, ev.values, `${label} values`),
    scales: ek.scales === null ? null : { k: uploadNew(alloc, cmds, ek.scales, `${label} key scales`), v: uploadNew(alloc, cmds, ev.scales!, `${label} value scales`) },
  };
}

/** An empty cache of `rows` rows (kv heads x slots) of headDim values, of this type; free with freeKv. */
export function allocKv(alloc: Allocator, type: KvCacheType, rows: number, headDim: number, label: string): KvBuffers {
  const bytes = rows * kvValueBytes(headDim, type);
  const scales = type === 'q8' ? { k: alloc.alloc(Math.max(16, rows * (headDim / 32) * 4), `${label} key scales`), v: alloc.alloc(Math.max(16, rows * (headDim / 32) * 4), `${label} value scales`) } : null;
  return { type, k: alloc.alloc(Math.max(16, bytes), `${label} keys`), v: alloc.alloc(Math.max(16, bytes), `${label} values`), scales };
}

export function freeKv(alloc: Allocator, c: KvBuffers): void {
  for (const b of [c.k, c.v, c.scales?.k, c.scales?.v]) if (b !== undefined) alloc.free(b);
}

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

/** Positions per split that keep a decode step's attention busy: a split per 64 visible positions, at most 32 (one workgroup per query head, attention.comp). */
export function attentionSplits(visible: number): number {
  return Math.max(1, Math.min(32, Math.ceil(visible / 64)));
}

/**
 * Splits for the folded kernel (a workgroup per kv head and split): at least 256 workgroups where
 * there are 128 positions a split for them, and at most 1024 positions a split. Measured on the H200
 * (`npm run bench:attention`, 2026-12-02): Llama 3.1 8B (8 kv heads) best at 32 splits from 4k to 32k
 * positions and 128 at 128k; Gemma 3 4B (4 kv heads) at 32 at 4k, 64 at 16k and 32k, 128 at 128k.
 */
export function foldedSplits(visible: number, kvHeads: number): number {
  return Math.max(1, Math.min(Math.ceil(visible / 128), Math.max(Math.ceil(256 / kvHeads), Math.ceil(visible / 1024))));
}

/** Positions a layer's cache holds for a query: its window's where it has one, else its slots. */
function heldPositions(s: AttentionShape): number {
  return s.window > 0 ? Math.min(s.window, s.capacity) : s.capacity;
}

/** Refuses a shape the attention kernels cannot run: a ring too small for the batch (a race), a head_dim past 256 or odd. */
export function checkAttentionShape(s: AttentionShape): void {
  if (s.window > 0 && s.capacity < (s.positions ?? Infinity) && s.capacity < s.window + s.tokens - 1) {
    throw new RangeError(
      `attention: ${s.tokens} queries with a window of ${s.window} need ${s.window + s.tokens - 1} cache slots, the ring has ${s.capacity}; prefill in chunks of at most ${s.capacity - s.window + 1}`,
    );
  }
  if (s.headDim > 256 || s.headDim % 2 !== 0) throw new RangeError(`attention: head_dim ${s.headDim} must be even and at most 256`);
}

export class Ops {
  /** The subgroup size each family of these kernels runs at (kernels/subgroups.ts). */
  readonly subgroups: Record<KernelFamily, SubgroupChoice>;

  /**
   * Decode attention's kernel: the query heads of a kv head folded into one workgroup
   * (attention_decode.comp), where a layer holds at least foldedFrom positions, its check passes on the
   * device and its layout fits the shape; else one workgroup per query head (attention.comp). On the
   * H200 folded took 30.3 µs a layer against 71.8 at 4k positions (Llama 3.1 8B), 169 against 500 at 32k
   * (`npm run bench:attention`).
   * UNICORN_DECODE_ATTENTION=per-head keeps the per-head kernel (to compare).
   */
  private readonly decodeKind: 'folded' | 'per-head';

  /** Set while the folded kernel's check records it (the check itself takes the kernel it checks). */
  private checking = false;

  /**
   * The fewest positions a decode attention layer over an f16 cache holds (its cache's slots) for the
   * folded kernel: below it the per-head kernel runs, whose more workgroups measured faster there (H200,
   * `npm run bench:attention` at 1k positions: 23.3 against 26.0 µs a layer on Llama 3.1 8B, 25.2 against
   * 27.5 on Gemma 3 4B; in Gemma 3 4B's decode step at a 640-token context, 20.2 µs per head against 25.3
   * folded). Over a q8 cache the folded kernel runs at every length: per head, two lanes share each word
   * and every pair reads its block's scale (1k positions: 35.2 µs per head against 27.0 folded on the 8B,
   * 58.0 against 28.3 on Gemma 3 4B, 2026-12-02).
   */
  private readonly foldedFrom: number;

  /** alloc: for the folded kernel's once-per-device check (a small allocator of its own without). opts.foldedFrom: see the field (tests and benchmarks set it). */
  constructor(
    readonly device: Device,
    private readonly alloc?: Allocator,
    opts: { foldedFrom?: number } = {},
  ) {
    this.foldedFrom = opts.foldedFrom ?? 2048;
    checkSubgroupLayout(device);
    this.subgroups = subgroupPlan(device.info);
    const kind = process.env['UNICORN_DECODE_ATTENTION'] ?? '';
    if (kind !== '' && kind !== 'folded' && kind !== 'per-head') throw new UnicornError(`UNICORN_DECODE_ATTENTION='${kind}' is not folded or per-head`);
    this.decodeKind = kind === 'per-head' ? 'per-head' : 'folded';
  }

  /** Splits of a decode step's attention that sees up to `visible` positions, for the kernel the device takes at this shape. */
  decodeSplits(visible: number, s: { heads: number; kvHeads: number; headDim: number }, type: KvCacheType = 'f16'): number {
    const folded = this.decodeSubgroups({ tokens: 1, ...s, capacity: visible, window: 0, scale: 1, softcap: 0 }, type) > 0;
    return folded ? foldedSplits(visible, s.kvHeads) : attentionSplits(visible);
  }

  /** The spec fields that make a family's kernel run at its subgroup size. */
  private sized(family: KernelFamily): { subgroupSize?: number } {
    const c = this.subgroups[family];
    return c.required ? { subgroupSize: c.size } : {};
  }

  /** One dispatch of `groups` workgroups (split into a 2-D grid past the device's x limit), buffers and push constants by name. */
  private dispatch<B extends string, P extends string>(
    cmds: Commands,
    k: Kernel<B, P>,
    buffers: { readonly [K in B]: Binding },
    push: { readonly [K in P]: number },
    groups: number,
  ): void {
    cmds.dispatch(k, k.bind(buffers), k.push(push), grid(groups, this.device.info.maxComputeWorkGroupCount[0]!));
  }

  /**
   * y = x / rms(x) * (offset + w) over `rows` rows of `n`; y may be x. With `add`, y += that (y not x).
   * With `next` (and `add`), then also next.out = y / rms(y) * (offset + next.w) in the same dispatch
   * (next.out may be x): a residual stream's post-norm added in and the norm that reads it next.
   * With `quant` (one row of a multiple of 32 values, at most maxQuantRow), the output (next.out with
   * `next`, else y) is also written as int8 activations in both byte orders (what MatVec.quantizeX would make).
   */
  rmsnorm(
    cmds: Commands,
    x: GpuBuffer,
    w: GpuBuffer,
    y: GpuBuffer,
    rows: number,
    n: number,
    eps: number,
    offset: 0 | 1,
    opts: { add?: boolean; quant?: { q8: GpuBuffer; q4: GpuBuffer; s: GpuBuffer }; next?: { w: GpuBuffer; out: GpuBuffer } } = {},
  ): void {
    const { add = false, quant, next } = opts;
    if (add && x === y) throw new RangeError('rmsnorm with add: y must not be x');
    if (next !== undefined && (!add || next.out === y)) throw new RangeError('rmsnorm: the next norm follows an add, into a buffer other than y');
    if (quant !== undefined && (rows !== 1 || n % 32 !== 0 || n > this.maxQuantRow))
      throw new RangeError(`rmsnorm: int8 output needs one row of a multiple of 32 values up to ${this.maxQuantRow}`);
    // One workgroup per row, wide enough that each invocation handles about 4 values: a decode step's
    // norm is one row of thousands (a narrow workgroup was latency-bound: 30-60 µs on the H100), the
    // per-head q/k norms are many short rows.
    const width = Math.min(
      512,
      this.device.info.maxComputeWorkGroupInvocations,
      Math.max(32, this.subgroups.norm.size, 2 ** Math.ceil(Math.log2(Math.max(1, n / 4)))),
    );
    const k = kernelFor(
      this.device,
      KERNELS.rmsnorm,
      {},
      // Each invocation holds up to 16 values of the row in registers (all its reads issued at once).
      {
        workgroup: width,
        add,
        quant: quant !== undefined,
        maxn: quant === undefined ? 1 : n,
        next: next !== undefined,
        per: Math.min(16, Math.ceil(n / width)),
      },
      this.sized('norm'),
    );
    const q = quant ?? { q8: x, q4: x, s: x };
    this.dispatch(cmds, k, { x, w, y, xq8: q.q8, xq4: q.q4, xs: q.s, w2: next?.w ?? w, outp: next?.out ?? y }, { rows, n, eps, offset }, rows);
  }

  /** The longest row rmsnorm can also quantize: it stages the row and its block scales in shared memory (beside 2 KiB of partial sums). */
  get maxQuantRow(): number {
    return Math.floor((this.device.info.maxComputeSharedMemorySize - 2048) / (4 + 4 / 32) / 32) * 32;
  }

  /**
   * Rotary embedding of q [tokens, heads, d] in place and of k [tokens, kvHeads, d], k and v stored
   * into the cache (f16, or q8 by blocks of 32 of a head's row) at position % capacity, in one dispatch (table: the
   * (cos, sin) rows of the tokens' positions). With `norm`, each head of q and k is first RMS-normed
   * with its weight (Gemma 3's q_norm / k_norm; q keeps the normed, rotated values). At most
   * `capacity` tokens at once: more would write one slot twice in the same dispatch (a race); a
   * sliding layer prefills in chunks that fit (see attention()).
   */
  ropeStore(
    cmds: Commands,
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    table: GpuBuffer,
    positions: GpuBuffer,
    cache: KvBuffers,
    s: { tokens: number; heads: number; kvHeads: number; headDim: number; capacity: number },
    norm?: { q: GpuBuffer; k: GpuBuffer; eps: number; offset: 0 | 1 },
  ): void {
    if (s.tokens > s.capacity)
      throw new RangeError(`kv store: ${s.tokens} tokens at once overflow a cache of ${s.capacity} slots; store in chunks of at most ${s.capacity}`);
    if (s.headDim % 4 !== 0 || s.headDim / 4 > this.device.info.maxComputeWorkGroupInvocations)
      throw new RangeError(`rope_store: head_dim ${s.headDim} must be a multiple of 4, at most ${4 * this.device.info.maxComputeWorkGroupInvocations}`);
    checkKvType(cache.type, s.headDim);
    const kernel = kernelFor(this.device, KERNELS.rope_store, { cache: cache.type }, { workgroup: s.headDim / 4, norm: norm !== undefined });
    const push = {
      tokens: s.tokens,
      heads: s.heads,
      kvHeads: s.kvHeads,
      headDim: s.headDim,
      capacity: s.capacity,
      eps: norm?.eps ?? 0,
      offset: norm?.offset ?? 0,
    };
    this.dispatch(
      cmds,
      kernel,
      { q, k, v, cs: table, pos: positions, ...kvBindings(cache), qn: norm?.q ?? table, kn: norm?.k ?? table },
      push,
      s.tokens * (s.heads + 2 * s.kvHeads),
    );
  }

  /** out = act(gate) * up over n values. */
  gated(cmds: Commands, act: Activation, gate: GpuBuffer, up: GpuBuffer, out: GpuBuffer, n: number): void {
    const k = kernelFor(this.device, KERNELS.gated_act, { act }, { workgroup: WG });
    this.dispatch(cmds, k, { g: gate, u: up, o: out }, { n }, Math.min(Math.ceil(n / WG), 4096));
  }

  /** y = a + b over n values; y may be a. With bn < n, b repeats every bn values (a bias per row). */
  add(cmds: Commands, a: GpuBuffer, b: GpuBuffer, y: GpuBuffer, n: number, bn = n): void {
    const k = kernelFor(this.device, KERNELS.add, {}, { workgroup: WG });
    this.dispatch(cmds, k, { a, b, y }, { n, bn }, Math.min(Math.ceil(n / WG), 4096));
  }

  /** x = cap * tanh(x / cap) over n values, in place. */
  softcap(cmds: Commands, x: GpuBuffer, n: number, cap: number): void {
    const k = kernelFor(this.device, KERNELS.softcap, {}, { workgroup: WG });
    this.dispatch(cmds, k, { x }, { n, cap }, Math.min(Math.ceil(n / WG), 4096));
  }

  /**
   * out[t] = table[ids[t]] * scale (INT8 tables: times the row's scale, the matrix's params). A table
   * past the device's storage-buffer range or allocation size goes in row ranges, a dispatch each,
   * each writing the tokens whose ids it holds.
   */
  embed(cmds: Commands, table: GpuMatrix, ids: GpuBuffer, out: GpuBuffer, tokens: number, scale: number, opts: { maxRange?: number } = {}): void {
    const format = table.format;
    if (!isEmbeddingFormat(format)) throw new RangeError(`embed: ${format} tables are not supported`);
    const k = kernelFor(this.device, KERNELS.embed, { format }, { workgroup: WG });
    for (const r of rowRanges(table, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange))) {
      const set = k.bind({
        table: { buffer: r.w, offset: r.wOffset, size: r.wBytes },
        rowScale:
          r.params === null ? { buffer: r.w, offset: r.wOffset, size: Math.min(r.wBytes, 16) } : { buffer: r.params, offset: r.pOffset, size: r.pBytes },
        ids,
        o: out,
      });
      // Workgroup y is the token (embed.comp reads gl_WorkGroupID.y), so no 2-D grid splitting here.
      const push = k.push({ tokens, hidden: table.cols, scale, vocab: table.rows, rowStart: r.start, rows: r.rows });
      cmds.dispatch(k, set, push, [Math.min(Math.ceil(table.cols / WG), 64), tokens]);
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
  attention(
    cmds: Commands,
    q: GpuBuffer,
    cache: KvBuffers,
    positions: GpuBuffer,
    o: GpuBuffer,
    s: AttentionShape,
    part?: GpuBuffer,
    quant?: { q8: GpuBuffer; q4: GpuBuffer; s: GpuBuffer },
  ): boolean {
    checkAttentionShape(s);
    checkKvType(cache.type, s.headDim);
    const splits = s.splits ?? 1;
    const rows = s.tokens * s.heads;
    if (splits > 1 && (part === undefined || part.size < rows * splits * (s.headDim + 2) * 4))
      throw new RangeError(`attention: ${splits} splits need a scratch buffer of ${rows * splits * (s.headDim + 2) * 4} bytes`);
    const sg = this.subgroups.attention.size;
    const folded = this.decodeSubgroups(s, cache.type);
    const k =
      folded > 0
        ? kernelFor(
            this.device,
            KERNELS.attention_decode,
            { cache: cache.type },
            { workgroup: folded * sg, sg, hd: s.headDim, g: s.heads / s.kvHeads, nsg: folded },
            this.foldedSized() ?? {},
          )
        : // At most 16 subgroups a workgroup (attention.comp's shared arrays), 128 invocations.
          kernelFor(
            this.device,
            KERNELS.attention,
            { cache: cache.type },
            { workgroup: Math.min(128, 16 * sg, this.device.info.maxComputeWorkGroupInvocations), maxD: 256, sgSize: sg },
            this.sized('attention'),
          );
    const push = {
      tokens: s.tokens,
      heads: s.heads,
      kvHeads: s.kvHeads,
      headDim: s.headDim,
      capacity: s.capacity,
      window: s.window,
      scale: s.scale,
      softcap: s.softcap,
      splits,
    };
    this.dispatch(cmds, k, { q, ...kvBindings(cache), pos: positions, o, part: part ?? o }, push, (folded > 0 ? s.tokens * s.kvHeads : rows) * splits);
    if (splits === 1) return false;
    cmds.barrier();
    const qz = quant !== undefined && s.headDim % 32 === 0 ? quant : undefined;
    const c = kernelFor(this.device, KERNELS.attention_combine, {}, { workgroup: Math.min(128, s.headDim), quant: qz !== undefined });
    this.dispatch(cmds, c, { part: part!, o, xq8: qz?.q8 ?? o, xq4: qz?.q4 ?? o, xs: qz?.s ?? o }, { rows, headDim: s.headDim, splits }, rows);
    return qz !== undefined;
  }

  /**
   * Subgroups a workgroup of the folded decode kernel (attention_decode.comp: the query heads of a kv
   * head together, each key and value row read once for them) takes for a shape, or 0 where
   * attention.comp runs: prompt batches, a head_dim that is not a multiple of 8, a group of more than
   * 16 heads, shared memory that does not fit, a subgroup size the device cannot require, a layer of
   * fewer than foldedFrom positions, a device where its check failed, or the per-head kind asked for.
   */
  decodeSubgroups(s: AttentionShape, type: KvCacheType = 'f16'): number {
    const nsg = this.foldedLayout(s, type);
    if (nsg === 0 || this.checking) return nsg;
    if (type === 'f16' && heldPositions(s) < this.foldedFrom) return 0;
    return this.foldedProblem(s.heads / s.kvHeads, s.headDim, nsg, type) === undefined ? nsg : 0;
  }

  /** Why the folded kernel was set aside at a shape its layout fits (a layer of fewer than foldedFrom positions, or its check failed on this device), or undefined where it runs or does not fit. */
  foldedRefusal(s: AttentionShape, type: KvCacheType = 'f16'): string | undefined {
    const nsg = this.foldedLayout(s, type);
    if (nsg === 0) return undefined;
    if (type === 'f16' && heldPositions(s) < this.foldedFrom) return `fewer than ${this.foldedFrom} positions`;
    return this.foldedProblem(s.heads / s.kvHeads, s.headDim, nsg, type);
  }

  /**
   * Why the folded kernel computes wrong on this device for a group of g heads at a head_dim, or
   * undefined when it is right: run once against the CPU reference on two decode steps of two kv
   * heads: the first position (one subgroup sees it, the others nothing) and a later one over a ring
   * that has wrapped, with a window, softcapping and 2 splits folded by the combine pass.
   */
  private foldedProblem(g: number, d: number, nsg: number, type: KvCacheType): string | undefined {
    const key = `${g},${d},${nsg},${type}`;
    let seen = foldedChecked.get(this.device);
    if (seen === undefined) foldedChecked.set(this.device, (seen = new Map()));
    if (seen.has(key)) return seen.get(key);
    const alloc = this.alloc ?? (this.ownAlloc ??= new Allocator(this.device, { blockSize: 1 << 22 }));
    const [kvHeads, heads, capacity] = [2, 2 * g, 72];
    const q = checkValues(heads * d, 1);
    const k = roundKv(checkValues(kvHeads * capacity * d, 2), type);
    const v = roundKv(checkValues(kvHeads * capacity * d, 3), type);
    const cmds = new Commands(this.device);
    const cache = uploadKv(alloc, cmds, k, v, type, 'decode check');
    const bufs = [
      uploadNew(alloc, cmds, new Uint8Array(q.buffer), 'decode check q'),
      uploadNew(alloc, cmds, new Uint8Array(8), 'decode check position'),
      uploadNew(alloc, cmds, new Uint8Array(q.length * 4), 'decode check o'),
      uploadNew(alloc, cmds, new Uint8Array(heads * 2 * (d + 2) * 4), 'decode check parts'),
    ] as const;
    let problem: string | undefined;
    try {
      this.checking = true;
      for (const c of [
        { position: 0, window: 0, softcap: 0, splits: 1 },
        { position: 100, window: 64, softcap: 4, splits: 2 },
      ]) {
        const shape: AttentionShape = { tokens: 1, heads, kvHeads, headDim: d, capacity, window: c.window, scale: 0.3, softcap: c.softcap, splits: c.splits };
        upload(alloc, cmds, bufs[1], new Uint8Array(Uint32Array.of(c.position).buffer));
        upload(alloc, cmds, bufs[2], new Uint8Array(new Float32Array(q.length).fill(Number.NaN).buffer));
        cmds.begin();
        this.attention(cmds, bufs[0], cache, bufs[1], bufs[2], shape, bufs[3]);
        cmds.submitAndWait();
        const got = new Float32Array(q.length);
        download(alloc, cmds, bufs[2], new Uint8Array(got.buffer));
        const want = attentionRef(q, k, v, [c.position], { heads, kvHeads, d, capacity, window: c.window, scale: 0.3, softcap: c.softcap });
        const i = got.findIndex((x, i) => !(Math.abs(x - want[i]!) <= 1e-4 + 1e-4 * Math.abs(want[i]!)));
        if (i >= 0) {
          problem = `at position ${c.position}, head ${Math.floor(i / d)}, dim ${i % d}: ${got[i]} instead of ${want[i]!.toFixed(4)}`;
          break;
        }
      }
    } finally {
      this.checking = false;
      for (const b of bufs) alloc.free(b);
      freeKv(alloc, cache);
    }
    seen.set(key, problem);
    return problem;
  }

  private ownAlloc: Allocator | undefined;

  /** The folded kernel's subgroups a workgroup for a shape by its layout alone (decodeSubgroups, before the device's check). */
  private foldedLayout(s: AttentionShape, type: KvCacheType): number {
    if (s.tokens !== 1 || this.decodeKind === 'per-head' || s.headDim % 8 !== 0) return 0;
    // Its layout needs the subgroup size it is built for: required, or a device without size control.
    if (this.foldedSized() === null) return 0;
    const g = s.heads / s.kvHeads;
    if (!Number.isInteger(g) || g > 16) return 0;
    const sg = this.subgroups.attention.size;
    const up16 = (n: number) => Math.ceil(n / 16) * 16;
    for (const nsg of [4, 2, 1]) {
      // Q, P, the references and sums, the outputs; then each subgroup's 8 KiB of value rows (and q8's scales: 1 KiB).
      const shared = g * s.headDim * 4 + up16(nsg * sg * g * 4) + 2 * up16(nsg * g * 4) + nsg * g * s.headDim * 4 + nsg * (8192 + (type === 'q8' ? 1024 : 0));
      if (nsg * sg <= this.device.info.maxComputeWorkGroupInvocations && shared <= this.device.info.maxComputeSharedMemorySize) return nsg;
    }
    return 0;
  }

  /**
   * The folded kernel's layout needs the subgroup size it is built for (its guard leaves the output
   * unwritten at another): where the device has size control, the pipeline requires it; without, the
   * driver's one size. null where the family's size is not one the device can require.
   */
  private foldedSized(): { subgroupSize?: number } | null {
    const sizes = this.device.info.subgroupSizes;
    const sg = this.subgroups.attention.size;
    if (sizes === null) return {};
    return sg >= sizes.min && sg <= sizes.max ? { subgroupSize: sg } : null;
  }

  /** out[outIndex] = index of the largest of x's first n values. */
  argmax(cmds: Commands, x: GpuBuffer, out: GpuBuffer, n: number, outIndex = 0): void {
    const k = kernelFor(
      this.device,
      KERNELS.argmax,
      {},
      { workgroup: Math.min(1024, this.device.info.maxComputeWorkGroupInvocations) },
      this.sized('sampling'),
    );
    this.dispatch(cmds, k, { x, outIds: out }, { n, outIndex }, 1);
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
      const width =
        this.device.info.type !== 'cpu' ? max : Math.min(max, Math.max(32, this.subgroups.sampling.size, 2 ** Math.ceil(Math.log2(Math.max(1, count / 256)))));
      return kernelFor(this.device, KERNELS.topk, {}, { workgroup: width }, this.sized('sampling'));
    };
    const slice = Math.max(Ops.TOPK_SLICE, 4 * k);
    const groups = Math.ceil(n / slice);
    if (groups === 1 || scratch === undefined) {
      this.dispatch(cmds, topkKernel(n), { x, outIdx, outVal, inIdx: x }, { n, k, slice: n, indirect: 0, idxEnd: n }, 1);
      return;
    }
    if (scratch.idx.size < groups * k * 4 || scratch.val.size < groups * k * 4)
      throw new RangeError(`top-k: scratch for ${groups * k} candidates is too small`);
    const first = topkKernel(slice);
    cmds.dispatch(first, first.bind({ x, outIdx: scratch.idx, outVal: scratch.val, inIdx: x }), first.push({ n, k, slice, indirect: 0, idxEnd: n }), [
      groups,
      1,
    ]);
    cmds.barrier();
    this.dispatch(
      cmds,
      topkKernel(groups * k),
      { x: scratch.val, outIdx, outVal, inIdx: scratch.idx },
      { n: groups * k, k, slice: groups * k, indirect: 1, idxEnd: n },
      1,
    );
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
