/**
 * Flash attention for a prompt batch (shaders/attention_coop.comp): Q K^T and P V on cooperative
 * matrices (f16 x f16 -> f32), online softmax, no score matrix in memory; what Ops.attention computes
 * for the same shape (GQA, causal, sliding window over a ring, softcap). Taken where the device has an
 * f16 -> f32 cooperative-matrix shape that divides head_dim, and checked once per device and tiling
 * against the CPU reference; elsewhere (and for one token) Ops.attention runs.
 * UNICORN_ATTENTION=coop|plain picks one (coop only where the device has it; by default CPU drivers
 * run plain: they pay for every barrier); UNICORN_ATTENTION_TILE=`nsg,bc` sets the tiling (benchmarks).
 */
import { UnicornError } from '../errors.js';
import { Commands } from '../vulkan/commands.js';
import type { Device, DeviceInfo } from '../vulkan/device.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { kernelFor } from '../vulkan/pipeline.js';
import { download, uploadNew } from '../vulkan/transfer.js';
import { coopShape } from './matmul.js';
import { type AttentionShape, type KvBuffers, checkAttentionShape, freeKv, kvBindings, uploadKv } from './ops.js';
import { attentionRef, checkValues, roundF16, roundKv } from './reference.js';
import type { KvCacheType } from '../models/memory.js';
import { KERNELS } from './table.js';

export type AttentionKind = 'coop' | 'plain';

/** attention_coop.comp's spec constants but the head_dim. */
export interface FlashTiles {
  /** The device's cooperative-matrix shape. */
  readonly tm: number;
  readonly tn: number;
  readonly tk: number;
  /** Subgroups a workgroup (tm query rows each) and keys a step. */
  readonly nsg: number;
  readonly bc: number;
  /** The next step's keys and values read into registers during this one (more registers). */
  readonly prefetch: boolean;
  /** Q and P as two f16 parts each (about f32's precision, twice the products). */
  readonly split: boolean;
  readonly sg: number;
}

/** Shared memory a tiling takes at a head_dim (what attention_coop.comp declares, each array a whole number of 16 bytes). */
export function flashShared(t: FlashTiles, headDim: number): number {
  const br = t.nsg * t.tm;
  const row = (headDim / 2 + 4) * 4;
  const p = br * (t.bc + 8) * 2;
  const lo = t.split ? br * row + p : 32; // Q's and P's lo parts
  return (2 * t.bc + br) * row + br * t.bc * 4 + p + lo + br * 12 + Math.ceil(t.nsg / 4) * 16;
}

/** Why a tiling cannot run at a head_dim on a device, or undefined when it can. */
export function flashTilesProblem(t: FlashTiles, headDim: number, info: DeviceInfo): string | undefined {
  if (headDim % t.tk !== 0 || headDim % t.tn !== 0 || headDim % 8 !== 0) return `head_dim ${headDim} is not a multiple of ${Math.max(t.tk, t.tn, 8)}`;
  if (t.bc % t.sg !== 0 || t.bc % t.tn !== 0 || t.bc % t.tk !== 0)
    return `${t.bc} keys a step are not a multiple of the subgroup (${t.sg}) and the matrix shape`;
  if ((t.tm * t.bc) % t.sg !== 0) return `a ${t.tm} x ${t.bc} tile does not divide into subgroups of ${t.sg}`;
  if (t.nsg * t.sg > info.maxComputeWorkGroupInvocations) return `${t.nsg * t.sg} invocations exceed the device's ${info.maxComputeWorkGroupInvocations}`;
  const shared = flashShared(t, headDim);
  if (shared > info.maxComputeSharedMemorySize) return `${shared} bytes of shared memory exceed the device's ${info.maxComputeSharedMemorySize}`;
  return undefined;
}

/**
 * The tiling at a head_dim on a device, or null where it has no usable shape or none fits: 4 subgroups
 * of rows, 32 keys a step (the subgroup's width where it is wider); then fewer subgroups and fewer
 * keys until one fits the device's shared memory (head_dim 256 on 48 KiB: one subgroup of rows).
 * UNICORN_ATTENTION_TILE overrides.
 */
export function flashTiles(info: DeviceInfo, headDim: number, forced = process.env['UNICORN_ATTENTION_TILE']): FlashTiles | null {
  const shape = info.cooperativeMatrix ? coopShape(info.coopMatShapes) : undefined;
  if (shape === undefined) return null;
  const base = { tm: shape.m, tn: shape.n, tk: shape.k, sg: info.subgroupSize };
  if (forced !== undefined && forced !== '') {
    const v = forced.split(',').map(Number);
    if ((v.length !== 2 && v.length !== 4) || !v.every((n) => Number.isInteger(n) && n >= 0) || v[0] === 0 || v[1] === 0 || v.slice(2).some((n) => n > 1)) {
      throw new UnicornError(`UNICORN_ATTENTION_TILE='${forced}' is not nsg,bc or nsg,bc,prefetch,split (e.g. 4,32 or 2,32,0,1)`);
    }
    const t = {
      ...base,
      nsg: v[0]!,
      bc: v[1]!,
      prefetch: v.length === 4 ? v[2] === 1 : prefetchFits(v[0]!, v[1]!, info.subgroupSize, headDim),
      split: v[3] === 1,
    };
    const problem = flashTilesProblem(t, headDim, info);
    if (problem !== undefined) throw new UnicornError(`UNICORN_ATTENTION_TILE='${forced}' does not fit ${info.name} at head_dim ${headDim}: ${problem}`);
    return t;
  }
  const wide = Math.max(32, info.subgroupSize);
  for (const nsg of [4, 2, 1]) {
    for (const bc of [wide, wide / 2]) {
      const t = { ...base, nsg, bc, prefetch: prefetchFits(nsg, bc, info.subgroupSize, headDim), split: false };
      if (flashTilesProblem(t, headDim, info) === undefined) return t;
    }
  }
  return null;
}

/**
 * Whether the next step's keys and values fit in registers beside the rest: 8 x 16 bytes of each per
 * invocation at most (2 subgroups of rows at head_dim 128 on the H200: 5,528 tok/s at pp4096 with it,
 * 4,971 without; head_dim 256 on one subgroup would take 32).
 */
function prefetchFits(nsg: number, bc: number, sg: number, headDim: number): boolean {
  return Math.ceil((bc * headDim) / 8 / (nsg * sg)) <= 8;
}

/** The kind a device gets by default, or the one UNICORN_ATTENTION asks for (coop refused where it has no cooperative matrices). */
export function attentionKind(info: DeviceInfo, forced = process.env['UNICORN_ATTENTION']): AttentionKind {
  const coop = info.cooperativeMatrix && coopShape(info.coopMatShapes) !== undefined;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'coop' && forced !== 'plain') throw new UnicornError(`UNICORN_ATTENTION='${forced}' is not coop or plain`);
    if (forced === 'coop' && !coop) {
      throw new UnicornError(
        `UNICORN_ATTENTION=coop: ${info.name} has no usable cooperative matrices (VK_KHR_cooperative_matrix with an f16 x f16 -> f32 shape)`,
      );
    }
    return forced;
  }
  return coop && info.type !== 'cpu' ? 'coop' : 'plain';
}

/** What each device's check found, by tiling and head_dim (undefined: right). */
const checked = new WeakMap<Device, Map<string, string | undefined>>();

/**
 * Why the kernel computes wrong on this device at this tiling and head_dim, or undefined when it is
 * right: checked once against the CPU reference on two blocks of rows (the second partial), GQA, a
 * window and softcapping, over a ring that wraps. A driver may run another subgroup size than asked or
 * lay out cooperative matrices as the kernel does not expect (AMD and Intel are not measured here).
 */
export function flashProblem(device: Device, alloc: Allocator, t: FlashTiles, headDim: number, type: KvCacheType = 'f16'): string | undefined {
  const key = `${t.tm}x${t.tn}x${t.tk},${t.nsg},${t.bc},${t.sg},${t.prefetch},${t.split},${headDim},${type}`;
  let seen = checked.get(device);
  if (seen === undefined) checked.set(device, (seen = new Map()));
  if (seen.has(key)) return seen.get(key);
  const [heads, kvHeads, d] = [4, 2, headDim];
  const tokens = Math.ceil((t.nsg * t.tm + 3) / (heads / kvHeads));
  const window = tokens + 2;
  const capacity = window + tokens - 1;
  const start = capacity + 3; // positions start .. start + tokens - 1: the ring of `capacity` slots has wrapped
  const q = checkValues(tokens * heads * d, 1);
  // The cache as rope_store leaves it: position p in slot p % capacity, [kvHeads, capacity, d] (q8 is
  // made f16 as the kernel reads it: the reference reads q8's values rounded to f16).
  const kFull = roundKv(checkValues(kvHeads * capacity * d, 2), type);
  const vFull = roundKv(checkValues(kvHeads * capacity * d, 3), type);
  const positions = Array.from({ length: tokens }, (_, i) => start + i);
  const cmds = new Commands(device);
  const cache = uploadKv(alloc, cmds, kFull, vFull, type, 'attention check');
  const bufs = [
    uploadNew(alloc, cmds, new Uint8Array(q.buffer), 'attention check q'),
    uploadNew(alloc, cmds, new Uint8Array(Uint32Array.from(positions).buffer), 'attention check positions'),
    uploadNew(alloc, cmds, new Uint8Array(new Float32Array(q.length).fill(Number.NaN).buffer), 'attention check o'),
  ] as const;
  let problem: string | undefined;
  try {
    const shape = { tokens, heads, kvHeads, headDim: d, capacity, window, scale: 0.3, softcap: 4 };
    cmds.begin();
    new FlashAttention(device, alloc, { kind: 'coop', checked: true, tiles: t }).record(cmds, bufs[0], cache, bufs[1], bufs[2], shape);
    cmds.submitAndWait();
    const got = new Float32Array(q.length);
    download(alloc, cmds, bufs[2], new Uint8Array(got.buffer));
    // The reference reads the cache with the same ring, q rounded to f16 after scaling as the kernel
    // rounds it (unless in two parts); what is left is P's f16 rounding, about 5e-4 a term (in two
    // parts: f32's, and the tolerance with it).
    const q16 = t.split ? q : Float32Array.from(q, (x) => roundF16(Float32Array.of(x * shape.scale))[0]! / shape.scale);
    const want = attentionRef(q16, roundF16(kFull), roundF16(vFull), positions, { heads, kvHeads, d, capacity, window, scale: shape.scale, softcap: shape.softcap });
    for (let i = 0; i < got.length; i++) {
      if (!(Math.abs(got[i]! - want[i]!) <= (t.split ? 2e-5 + 2e-5 * Math.abs(want[i]!) : 2e-3 + 5e-3 * Math.abs(want[i]!)))) {
        problem = `token ${Math.floor(i / (heads * d))}, head ${Math.floor(i / d) % heads}, dim ${i % d}: ${got[i]} instead of ${want[i]!.toFixed(4)}`;
        break;
      }
    }
  } finally {
    for (const b of bufs) alloc.free(b);
    freeKv(alloc, cache);
  }
  seen.set(key, problem);
  return problem;
}

export class FlashAttention {
  readonly kind: AttentionKind;
  /** Why the device's default, coop, was set aside at a head_dim and cache type (`${headDim},${type}`: its check failed). */
  private readonly fallbacks = new Map<string, string>();
  private readonly forced: FlashTiles | undefined;
  /** Asked for by name (option or UNICORN_ATTENTION): a failed check is an error, not a fallback. */
  private readonly required: boolean;

  constructor(
    readonly device: Device,
    private readonly alloc: Allocator,
    private readonly opts: { kind?: AttentionKind; checked?: boolean; tiles?: FlashTiles } = {},
  ) {
    this.kind = opts.kind ?? attentionKind(device.info);
    this.forced = opts.tiles;
    this.required = opts.kind === 'coop' || process.env['UNICORN_ATTENTION'] === 'coop';
  }

  /** The tiling a shape gets, or null where the plain kernel runs (one token, another kind, a head_dim it does not take, a failed check). */
  tilesFor(s: AttentionShape, type: KvCacheType = 'f16'): FlashTiles | null {
    if (this.kind !== 'coop' || s.tokens < 2 || (s.splits ?? 1) !== 1) return null;
    const t = this.forced ?? flashTiles(this.device.info, s.headDim);
    if (t === null || flashTilesProblem(t, s.headDim, this.device.info) !== undefined) return null;
    if (this.opts.checked === true) return t;
    const problem = flashProblem(this.device, this.alloc, t, s.headDim, type);
    if (problem === undefined) return t;
    if (this.required) {
      throw new UnicornError(`the cooperative-matrix attention computes wrong on ${this.device.info.name} at head_dim ${s.headDim}${type === 'q8' ? ' over a q8 cache' : ''} (${problem})`, {
        hint: 'leave UNICORN_ATTENTION unset (the plain kernel runs), and please report this device and driver (`unicorn doctor`)',
      });
    }
    this.fallbacks.set(`${s.headDim},${type}`, `${type === 'q8' ? 'over a q8 cache: ' : ''}${problem}`);
    return null;
  }

  /** The kernel a prompt batch gets at a head_dim, in words (unicorn bench); runs the check if it has not run. */
  describe(headDim: number, type: KvCacheType = 'f16'): string {
    if (this.kind !== 'coop')
      return `plain${this.device.info.type === 'cpu' ? ' (a CPU driver)' : this.device.info.cooperativeMatrix ? '' : ' (no cooperative matrices)'}`;
    const t = this.tilesFor({ tokens: 2, heads: 1, kvHeads: 1, headDim, capacity: 2, window: 0, scale: 1, softcap: 0 }, type);
    const failed = this.fallbacks.get(`${headDim},${type}`);
    if (failed !== undefined) return `plain (the cooperative-matrix attention failed its check on this device: ${failed})`;
    if (t === null) return `plain (no cooperative-matrix tiling fits head_dim ${headDim})`;
    return `flash attention on cooperative matrices ${t.tm}x${t.tn}x${t.tk}, ${t.nsg * t.tm} query rows x ${t.bc} keys a step${t.prefetch ? '' : ' (no prefetch)'}${t.split ? ', Q and P in two f16 parts' : ''}`;
  }

  /** Records o = attention(q) over the cache for a shape tilesFor takes (with its tiling, where the caller has it). */
  record(
    cmds: Commands,
    q: GpuBuffer,
    cache: KvBuffers,
    positions: GpuBuffer,
    o: GpuBuffer,
    s: AttentionShape,
    t: FlashTiles | null = this.tilesFor(s, cache.type),
  ): void {
    checkAttentionShape(s);
    if (t === null) throw new Error(`FlashAttention: no tiling for ${s.tokens} tokens at head_dim ${s.headDim} here`);
    const sizes = this.device.info.subgroupSizes;
    const subgroupSize = sizes !== null && t.sg >= sizes.min && t.sg <= sizes.max ? t.sg : undefined;
    const k = kernelFor(
      this.device,
      KERNELS.attention_coop,
      { cache: cache.type },
      { workgroup: t.nsg * t.sg, tm: t.tm, tn: t.tn, tk: t.tk, nsg: t.nsg, bc: t.bc, hd: s.headDim, sg: t.sg, prefetch: t.prefetch, qsplit: t.split },
      subgroupSize === undefined ? {} : { subgroupSize },
    );
    const rows = s.tokens * (s.heads / s.kvHeads);
    const blocks = Math.ceil(rows / (t.nsg * t.tm));
    if (blocks > this.device.info.maxComputeWorkGroupCount[0]! || s.kvHeads > this.device.info.maxComputeWorkGroupCount[1]!)
      throw new RangeError(`attention: ${s.tokens} tokens in one dispatch exceed the device's grid; split the batch`);
    const push = { tokens: s.tokens, heads: s.heads, kvHeads: s.kvHeads, capacity: s.capacity, window: s.window, scale: s.scale, softcap: s.softcap };
    cmds.dispatch(k, k.bind({ q, ...kvBindings(cache), pos: positions, o }), k.push(push), [blocks, s.kvHeads]);
  }
}
