/**
 * The Vulkan backend: the Forward steps recorded as kernels over GPU-resident weights, activations
 * and a KV cache (f16, or q8: models/memory.ts). A prompt batch is recorded and submitted as one command buffer; the one-token
 * decode step is recorded once per output kind and replayed, its per-token values (token id,
 * position, rope angles) written into small host-visible buffers that the kernels read.
 */
import { FlashAttention } from '../kernels/attention-coop.js';
import { MatMul } from '../kernels/matmul.js';
import { MatVec, type GpuMatrix, type QuantizedX, quantizedView } from '../kernels/matvec.js';
import { WEIGHT_FORMATS, isGrouped, takesInt8 } from '../kernels/weight-formats.js';
import { type KvBuffers, Ops, allocKv, sortTopK } from '../kernels/ops.js';
import { inverseFrequencies, ropeTable } from '../kernels/rope-table.js';
import { Commands } from '../vulkan/commands.js';
import type { Device } from '../vulkan/device.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { download } from '../vulkan/transfer.js';
import { ConfigError, UnicornError, UnsupportedShapeError } from '../errors.js';
import { ARCHITECTURES } from './architectures.js';
import { type Backend, type Output, type Probe, type StepResult, rewindLimit } from './backend.js';
import type { Act } from './forward.js';
import { type FuseContext, type FusedStep, type Int8Input, fuse, fusionEnabled } from './fuse.js';
import { recordPass } from './steps.js';
import type { ModelSpec } from './spec.js';
import { type KvCacheType, checkKvCache, kvValueBytes } from './memory.js';
import type { GpuWeights } from './weights.js';

export interface GpuBackendOptions {
  readonly ctx: number;
  /** Tokens per prefill batch (default prefillBatch()). */
  readonly batch?: number;
  /** GPU timestamps after every dispatch, read with lastProfile() (bench:decode). */
  readonly profile?: boolean;
  /**
   * false: INT8 and INT4 projections take float activations even where the device has integer dot
   * products (tests: then decode computes what the CPU reference does, up to summation order).
   */
  readonly integerDot?: boolean;
  /** false: no fusion (fuse.ts); default: on unless UNICORN_NO_FUSION=1. */
  readonly fusion?: boolean;
  /** How the KV cache stores keys and values (models/memory.ts); default f16. */
  readonly kvCache?: KvCacheType;
}

interface LayerCache extends KvBuffers {
  readonly capacity: number;
}

/** What the recording of one step needs to know. */
interface Recording {
  readonly cmds: Commands;
  readonly tokens: number;
  readonly output: Output | { readonly kind: 'all' };
}

/**
 * Refuses, before anything is recorded, a model whose shapes the kernels do not take, naming the
 * shape and the limit: attention and rope_store take head_dim up to 256 in multiples of 4; a
 * projection's rows are read in 16-byte blocks (8 bf16 / f16 values, 4 f32, 16 INT8, an INT4 group).
 */
export function checkShapes(spec: ModelSpec, weights: GpuWeights, device: Device): void {
  const hint = 'run it with --device cpu (the reference path: slow, but any shape), or report the model';
  const d = spec.headDim;
  if (d % 4 !== 0 || d > 256 || d / 4 > device.info.maxComputeWorkGroupInvocations) {
    throw new UnsupportedShapeError(`head_dim ${d}: unicorn's attention kernels take head_dim up to 256, a multiple of 4`, { hint });
  }
  for (const [name, m] of [...weights.matrices, ['embed_tokens.weight', weights.embedding.table] as const]) {
    const per = WEIGHT_FORMATS[m.format].valuesPerBlock;
    const grouped = isGrouped(m.format);
    if (m.cols % per !== 0 || (grouped && m.cols % m.group !== 0)) {
      throw new UnsupportedShapeError(`${name}: rows of ${m.cols} ${m.format} values; the GPU kernels read rows in blocks of ${grouped ? m.group : per}`, { hint });
    }
  }
}

/**
 * Tokens per prefill batch unless the caller asks: UNICORN_BATCH (a positive integer), else 512.
 * Measured on the H200 (Llama 3.1 8B int4, cooperative matmul): pp512 3,260 / 4,447 / 4,488 tok/s and
 * pp4096 1,496 / 1,788 / 1,888 at batches of 256 / 512 / 1024; 512 keeps a 27B's activations (~146 MB)
 * within the headroom fit.ts leaves (256 MB), 1024 would not. The batch never changes the result beyond
 * f16 rounding (forward.test.ts prefills in batches of 5).
 */
export function prefillBatch(env = process.env['UNICORN_BATCH']): number {
  if (env === undefined || env === '') return 512;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1) throw new UnicornError(`UNICORN_BATCH='${env}' is not a positive number of tokens`);
  return n;
}

export class GpuBackend implements Backend {
  readonly spec: ModelSpec;
  readonly ctx: number;
  readonly batch: number;
  readonly rewindLimit: number;
  readonly name: string;
  /** How the KV cache stores keys and values. */
  readonly kvCache: KvCacheType;
  private readonly mv: MatVec;
  private readonly mm: MatMul;
  private readonly ops: Ops;
  private readonly flash: FlashAttention;
  /** Whether some projection takes int8 activations (INT8 or INT4 weights on an integer-dot device). */
  private readonly quantizedInputs: boolean;
  private readonly act: Record<Act, GpuBuffer>;
  private readonly up: GpuBuffer;
  private readonly tmp: GpuBuffer;
  private readonly last: GpuBuffer;
  private readonly logitsBuf: GpuBuffer;
  private readonly caches: LayerCache[];
  private readonly topkScratch: { idx: GpuBuffer; val: GpuBuffer };
  /** Split partial results of decode attention (flash-decoding). */
  private readonly attnPart: GpuBuffer;
  // Host-visible per-step inputs and outputs.
  private readonly ids: GpuBuffer;
  private readonly positions: GpuBuffer;
  private readonly ropeTables = new Map<string, { buf: GpuBuffer; inv: Float32Array }>();
  private readonly layerRope: string[];
  private readonly result: GpuBuffer;
  private readonly topVals: GpuBuffer;
  private readonly logitsHost: GpuBuffer;
  private readonly owned: GpuBuffer[] = [];
  private readonly stepCmds: Commands;
  private readonly decodeSteps = new Map<string, Commands>();
  /** Whether fused steps are lowered (UNICORN_NO_FUSION=1: each recorded step as it is). */
  readonly fusion: boolean;
  /** The fused steps of a decode step and of a prefill, made once (fused()). */
  private readonly plans = new Map<string, readonly FusedStep[]>();
  static readonly MAX_TOPK = 1024;
  readonly maxTopK = GpuBackend.MAX_TOPK;

  constructor(readonly device: Device, private readonly alloc: Allocator, private readonly weights: GpuWeights, spec: ModelSpec, private readonly opts: GpuBackendOptions) {
    checkShapes(spec, weights, device);
    this.spec = spec;
    this.ctx = opts.ctx;
    this.kvCache = opts.kvCache ?? 'f16';
    checkKvCache(spec, this.kvCache);
    // Every activation buffer of a batch is bound whole: a batch stays within one storage-buffer range.
    const maxRange = Math.min(device.info.maxStorageBufferRange, device.info.maxMemoryAllocationSize);
    const widest = 4 * Math.max(spec.hiddenSize, spec.numHeads * spec.headDim, spec.intermediateSize);
    this.batch = Math.max(1, Math.min(opts.batch ?? prefillBatch(), opts.ctx, Math.floor(maxRange / widest)));
    this.name = device.info.name;
    this.mv = new MatVec(device, alloc, opts.integerDot === false ? { integerDot: false } : {});
    this.fusion = opts.fusion ?? fusionEnabled();
    this.mm = new MatMul(device, alloc);
    this.ops = new Ops(device, alloc);
    this.flash = new FlashAttention(device, alloc);
    this.quantizedInputs = this.mv.integerDot && [...weights.matrices.values()].some((m) => takesInt8(m.format));
    const B = this.batch;
    const q = spec.numHeads * spec.headDim;
    const kv = spec.numKvHeads * spec.headDim;
    const a = (floats: number, label: string, placement: 'device' | 'host' = 'device') => {
      const buf = alloc.alloc(Math.max(16, floats * 4), label, placement);
      this.owned.push(buf);
      return buf;
    };
    try {
      this.act = {
        x: a(B * spec.hiddenSize, 'x'), h: a(B * spec.hiddenSize, 'h'), q: a(B * q, 'q'), k: a(B * kv, 'k'), v: a(B * kv, 'v'),
        a: a(B * q, 'attention out'), g: a(B * spec.intermediateSize, 'mlp hidden'),
      };
      this.up = a(B * spec.intermediateSize, 'mlp up');
      this.tmp = a(B * spec.hiddenSize, 'projection before the residual add');
      this.last = a(spec.hiddenSize, 'last token');
      this.logitsBuf = a(spec.vocabSize, 'logits');
      this.caches = spec.layers.map((l) => {
        const capacity = l.window === null ? this.ctx : Math.min(this.ctx, l.window + B - 1);
        // f16: 2 bytes a value; q8: 1 byte a value, and an f32 scale a block of 32 in a buffer of its own.
        const slot = spec.numKvHeads * kvValueBytes(spec.headDim, this.kvCache);
        const bytes = capacity * slot;
        if (bytes > maxRange) {
          throw new ConfigError(`--ctx ${this.ctx}: layer ${l.index}'s keys take ${bytes} bytes, more than this device binds in one buffer (${maxRange} bytes)`, {
            hint: `use --ctx ${Math.floor(maxRange / slot) - (l.window === null ? 0 : B - 1)} or less on ${device.info.name}`,
          });
        }
        const c = allocKv(alloc, this.kvCache, spec.numKvHeads * capacity, spec.headDim, `layer ${l.index}`);
        this.owned.push(c.k, c.v, ...(c.scales === null ? [] : [c.scales.k, c.scales.v]));
        return { ...c, capacity };
      });
      const tk = Ops.topkScratchBytes(spec.vocabSize, GpuBackend.MAX_TOPK) / 4;
      this.topkScratch = { idx: a(tk, 'top-k candidates'), val: a(tk, 'top-k candidate values') };
      this.attnPart = a(spec.numHeads * this.maxSplits() * (spec.headDim + 2), 'attention partials');
      this.rewindLimit = rewindLimit(spec.layers.map((l, i) => ({ window: l.window, capacity: this.caches[i]!.capacity })), this.ctx);
      this.ids = a(B, 'token ids', 'host');
      this.positions = a(B, 'positions', 'host');
      this.layerRope = spec.layers.map((l) => {
        const key = JSON.stringify(l.rope);
        if (!this.ropeTables.has(key)) this.ropeTables.set(key, { buf: a(B * spec.headDim, `rope ${key}`, 'host'), inv: inverseFrequencies(l.rope, spec.headDim) });
        return key;
      });
      this.result = a(GpuBackend.MAX_TOPK, 'sampled ids', 'host');
      this.topVals = a(GpuBackend.MAX_TOPK, 'top-k values', 'host');
      // Read by the host every sampled token: straight from the logits only where that mapping is cached.
      this.logitsHost = this.logitsBuf.mapped !== null && this.logitsBuf.hostCached ? this.logitsBuf : a(spec.vocabSize, 'logits read-back', 'host');
    } catch (e) {
      for (const b of this.owned) alloc.free(b);
      throw e;
    }
    this.stepCmds = this.newCommands();
  }

  private lastCmds: Commands | undefined;

  /** Decode attention's split count for a layer (flash-decoding; the recording serves every later position). */
  private splits(layer: number): number {
    const sp = this.spec;
    return this.ops.decodeSplits(Math.min(this.ctx, sp.layers[layer]!.window ?? this.ctx), { heads: sp.numHeads, kvHeads: sp.numKvHeads, headDim: sp.headDim }, this.kvCache);
  }

  private maxSplits(): number {
    return Math.max(...this.spec.layers.map((_, i) => this.splits(i)));
  }

  private newCommands(): Commands {
    const c = new Commands(this.device);
    if (this.opts.profile === true) c.enableProfiling();
    return c;
  }

  /** The prefill matmul kernel in words (unicorn bench). */
  prefillKernel(): string {
    return this.mm.describe();
  }

  /** The prefill attention kernel in words (unicorn bench). */
  prefillAttention(): string {
    return this.flash.describe(this.spec.headDim, this.kvCache);
  }

  /** Per-dispatch GPU times of the last step (with the profile option). */
  lastProfile(): { label: string; us: number }[] {
    return this.lastCmds?.profile() ?? [];
  }

  private prefillProfile: { tokens: number; steps: { label: string; us: number }[] } = { tokens: 0, steps: [] };

  /** Per-dispatch GPU times of the last step of more than one token (with the profile option). */
  lastPrefillProfile(): { tokens: number; steps: { label: string; us: number }[] } {
    return this.prefillProfile;
  }

  // ---- Lowering: each fused step (fuse.ts) becomes its dispatches, then a barrier. ----

  private matrix(name: string): GpuMatrix {
    const m = name === 'lm_head.weight' ? this.weights.lmHead : this.weights.matrices.get(name);
    if (m === undefined) throw new Error(`weights: no matrix ${name}`);
    return m;
  }

  private vector(name: string): GpuBuffer {
    const v = this.weights.vectors.get(name);
    if (v === undefined) throw new Error(`weights: no vector ${name}`);
    return v;
  }

  /** What fusion needs to know of a pass over `tokens` tokens on this device with these weights. */
  private fuseContext(tokens: number): FuseContext {
    return {
      spec: this.spec, tokens, int8Activations: this.quantizedInputs, maxQuantRow: this.ops.maxQuantRow, fusion: this.fusion,
      format: (name) => this.matrix(name), dotPathForFloatX: (format) => this.mv.dotPath(format), splits: (layer) => this.splits(layer),
    };
  }

  /** The fused steps of a pass: decode (one token) and prefill each fused once. */
  fused(tokens: number, observe = false): readonly FusedStep[] {
    const key = `${tokens === 1 ? 'decode' : 'prefill'}${observe ? '+observe' : ''}`;
    let f = this.plans.get(key);
    if (f === undefined) {
      f = fuse(recordPass(ARCHITECTURES[this.spec.family], this.spec, observe), this.fuseContext(tokens));
      this.plans.set(key, f);
    }
    return f;
  }

  /** The int8 activations a projection of matrix m reads, as the fused step says where they come from. */
  private int8Input(x8: Int8Input | undefined, src: Act, m: GpuMatrix, cmds: Commands): QuantizedX | undefined {
    if (x8 === undefined) return undefined;
    if (x8 === 'quantize') return this.mv.quantizeX(cmds, this.act[src], m.cols, m.format);
    return quantizedView(this.mv.scratch(m.cols, x8.slot), m.format);
  }

  private lower(step: FusedStep, r: Recording, observe?: (stage: number) => void): void {
    const { cmds, tokens } = r;
    const s = this.spec;
    const eps = s.rmsNormEps;
    const offset = s.normWeightOffset;
    switch (step.op) {
      case 'embed': {
        this.ops.embed(cmds, this.weights.embedding.table, this.ids, this.act.x, tokens, this.weights.embedding.scale);
        break;
      }
      case 'norm': {
        const quant = step.int8 === true ? { quant: this.mv.scratch(s.hiddenSize) } : {};
        this.ops.rmsnorm(cmds, this.act[step.src], this.vector(step.weight), this.act[step.dst], tokens, s.hiddenSize, eps, offset, quant);
        break;
      }
      case 'addNorm': {
        const quant = step.int8 === true ? { quant: this.mv.scratch(s.hiddenSize) } : {};
        const next = step.next === undefined ? {} : { next: { w: this.vector(step.next.weight), out: this.act[step.next.out] } };
        this.ops.rmsnorm(cmds, this.act[step.src], this.vector(step.weight), this.act[step.dst], tokens, s.hiddenSize, eps, offset, { add: true, ...next, ...quant });
        break;
      }
      case 'headNorms': {
        for (const n of step.norms) this.ops.rmsnorm(cmds, this.act[n.buf], this.vector(n.weight), this.act[n.buf], tokens * n.heads, s.headDim, eps, offset);
        break;
      }
      case 'ropeStore': {
        const c = this.caches[step.layer]!;
        const table = this.ropeTables.get(this.layerRope[step.layer]!)!.buf;
        const norm = step.norms === undefined ? undefined : { q: this.vector(step.norms.q), k: this.vector(step.norms.k), eps, offset };
        this.ops.ropeStore(cmds, this.act.q, this.act.k, this.act.v, table, this.positions, c, { tokens, heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim, capacity: c.capacity }, norm);
        break;
      }
      case 'linear': {
        const m = this.matrix(step.weight);
        const b = step.bias === undefined ? undefined : this.vector(step.bias);
        if (tokens === 1) {
          const xq = this.int8Input(step.x8, step.src, m, cmds);
          this.mv.record(cmds, m, this.act[step.src], this.act[step.dst], { ...(b === undefined ? {} : { bias: b }), ...(xq === undefined ? {} : { xq }) });
        } else {
          this.mm.record(cmds, m, this.act[step.src], this.act[step.dst], tokens);
          if (b !== undefined) {
            cmds.barrier();
            this.ops.add(cmds, this.act[step.dst], b, this.act[step.dst], tokens * m.rows, m.rows);
          }
        }
        break;
      }
      case 'linearAdd': {
        const m = this.matrix(step.weight);
        if (m.rows !== s.hiddenSize) throw new Error(`linearAdd: ${step.weight} does not project to the hidden size`);
        if (tokens === 1) {
          const xq = this.int8Input(step.x8, step.src, m, cmds);
          this.mv.record(cmds, m, this.act[step.src], this.act[step.dst], { accumulate: true, ...(xq === undefined ? {} : { xq }) });
        } else {
          this.mm.record(cmds, m, this.act[step.src], this.tmp, tokens);
          cmds.barrier();
          this.ops.add(cmds, this.act[step.dst], this.tmp, this.act[step.dst], tokens * m.rows);
        }
        break;
      }
      case 'gateUp': {
        const g = this.matrix(step.gate);
        const u = this.matrix(step.up);
        if (tokens === 1 && g.format === u.format) {
          const xq = this.int8Input(step.x8, step.src, g, cmds);
          // With int8: into a scratch of its own ('out'): it reads the norm's int8 activations while it writes these.
          const quantOut = step.int8 === true ? this.mv.scratch(g.rows, 'out') : undefined;
          this.mv.record(cmds, g, this.act[step.src], this.act.g, { up: u, act: step.act, ...(xq === undefined ? {} : { xq }), ...(quantOut === undefined ? {} : { quantOut }) });
        } else {
          this.mm.record(cmds, g, this.act[step.src], this.act.g, tokens);
          this.mm.record(cmds, u, this.act[step.src], this.up, tokens);
          cmds.barrier();
          this.ops.gated(cmds, step.act, this.act.g, this.up, this.act.g, tokens * g.rows);
        }
        break;
      }
      case 'attention': {
        const c = this.caches[step.layer]!;
        const quant = step.int8 === true ? this.mv.scratch(s.numHeads * s.headDim) : undefined;
        const shape = {
          tokens, heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim, capacity: c.capacity, positions: this.ctx,
          window: s.layers[step.layer]!.window ?? 0, scale: s.queryPreAttnScalar ** -0.5, softcap: s.attnLogitSoftcap ?? 0,
          // One token: split its positions over workgroups.
          splits: tokens === 1 ? this.splits(step.layer) : 1,
        };
        // A prompt batch: flash attention on cooperative matrices where the device has them.
        const flash = this.flash.tilesFor(shape, c.type);
        if (flash !== null) this.flash.record(cmds, this.act.q, c, this.positions, this.act[step.dst], shape, flash);
        else this.ops.attention(cmds, this.act.q, c, this.positions, this.act[step.dst], shape, this.attnPart, quant);
        break;
      }
      case 'logits': {
        this.lowerLogits(step, r);
        return;
      }
      case 'observe': {
        observe?.(step.stage);
        return;
      }
    }
    cmds.barrier();
  }

  /** The output head: the logits the output asks for, softcapped, then argmax or top-k on the GPU. */
  private lowerLogits(step: { readonly src: Act; readonly x8?: Int8Input }, r: Recording): void {
    const { cmds, tokens, output } = r;
    const s = this.spec;
    const cap = s.finalLogitSoftcap;
    const head = this.weights.lmHead;
    if (output.kind === 'none') return;
    if (output.kind === 'all') {
      // Probe: logits of every token (tokens x vocab floats fit when checked).
      const all = this.probeLogits!;
      this.mm.record(cmds, head, this.act[step.src], all, tokens);
      cmds.barrier();
      if (cap !== null) this.ops.softcap(cmds, all, tokens * s.vocabSize, cap);
      cmds.barrier();
      return;
    }
    let x = this.act[step.src];
    if (tokens > 1) {
      cmds.copy(x, this.last, s.hiddenSize * 4, (tokens - 1) * s.hiddenSize * 4, 0);
      cmds.barrier();
      x = this.last;
    }
    const xq = tokens === 1 ? this.int8Input(step.x8, step.src, head, cmds) : undefined;
    this.mv.record(cmds, head, x, this.logitsBuf, xq === undefined ? {} : { xq });
    cmds.barrier();
    if (cap !== null) {
      this.ops.softcap(cmds, this.logitsBuf, s.vocabSize, cap);
      cmds.barrier();
    }
    if (output.kind === 'argmax') this.ops.argmax(cmds, this.logitsBuf, this.result, s.vocabSize);
    else if (output.kind === 'topk') this.ops.topk(cmds, this.logitsBuf, this.result, this.topVals, s.vocabSize, output.k, this.topkScratch);
    else if (this.logitsHost !== this.logitsBuf) cmds.copy(this.logitsBuf, this.logitsHost, s.vocabSize * 4);
    cmds.barrier();
  }

  // ---- Backend ----

  private probeLogits: GpuBuffer | undefined;

  /** Writes the host-side inputs of a step: token ids, positions, rope angles. */
  private writeInputs(ids: readonly number[], start: number): void {
    if (ids.length === 0 || ids.length > this.batch) throw new RangeError(`a step takes 1 to ${this.batch} tokens, not ${ids.length}`);
    if (start < 0 || start + ids.length > this.ctx) throw new RangeError(`positions ${start}..${start + ids.length - 1} are outside the context of ${this.ctx}`);
    const idView = new Uint32Array(this.alloc.view(this.ids, 0, ids.length * 4).buffer, 0, ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.spec.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary of ${this.spec.vocabSize}`);
      idView[i] = id;
    }
    const pos = Array.from({ length: ids.length }, (_, i) => start + i);
    new Uint32Array(this.alloc.view(this.positions, 0, ids.length * 4).buffer, 0, ids.length).set(pos);
    const half = this.spec.headDim / 2;
    for (const { buf, inv } of this.ropeTables.values()) {
      ropeTable(inv, pos, new Float32Array(this.alloc.view(buf, 0, ids.length * half * 8).buffer, 0, ids.length * half * 2));
    }
  }

  /** Records a whole forward pass, its fused steps in order; a failure leaves no half-open recording behind. */
  private record(r: Recording, observe?: (stage: number) => void): void {
    try {
      for (const step of this.fused(r.tokens, observe !== undefined)) this.lower(step, r, observe);
    } catch (e) {
      r.cmds.abandon();
      throw e;
    }
  }

  private collect(output: Output): StepResult {
    const n = this.spec.vocabSize;
    switch (output.kind) {
      case 'none': return {};
      case 'argmax': return { argmax: new Uint32Array(this.alloc.view(this.result, 0, 4).buffer, 0, 1)[0]! };
      case 'topk': {
        const idx = new Uint32Array(output.k);
        const val = new Float32Array(output.k);
        this.alloc.read(this.result, new Uint8Array(idx.buffer));
        this.alloc.read(this.topVals, new Uint8Array(val.buffer));
        return { topk: sortTopK(idx, val) };
      }
      case 'logits': {
        const logits = new Float32Array(n);
        this.alloc.read(this.logitsHost, new Uint8Array(logits.buffer));
        return { logits };
      }
    }
  }

  step(ids: readonly number[], start: number, output: Output): StepResult {
    if (output.kind === 'topk' && (output.k < 1 || output.k > Math.min(GpuBackend.MAX_TOPK, this.spec.vocabSize))) throw new RangeError(`top-k on the GPU takes k from 1 to ${GpuBackend.MAX_TOPK}`);
    this.writeInputs(ids, start);
    if (ids.length === 1) {
      // Decode: replay the step recorded for this output.
      const key = output.kind === 'topk' ? `topk${output.k}` : output.kind;
      let cmds = this.decodeSteps.get(key);
      if (cmds === undefined) {
        cmds = this.newCommands();
        cmds.begin({ reusable: true });
        this.record({ cmds, tokens: 1, output });
        cmds.end();
        this.decodeSteps.set(key, cmds);
      }
      cmds.submitAndWait();
      this.lastCmds = cmds;
    } else {
      this.stepCmds.begin();
      this.record({ cmds: this.stepCmds, tokens: ids.length, output });
      this.stepCmds.submitAndWait();
      this.lastCmds = this.stepCmds;
      if (this.opts.profile === true) this.prefillProfile = { tokens: ids.length, steps: this.stepCmds.profile() };
    }
    return this.collect(output);
  }

  /**
   * The GPU work of one pass over `tokens` tokens with this output, as text (Commands' trace: each
   * dispatch with its kernel, specialization and push constants, grid and buffer ranges; barriers;
   * copies). Recorded and never submitted: nothing runs.
   */
  plan(tokens: number, output: Output): string[] {
    if (tokens < 1 || tokens > this.batch) throw new RangeError(`a step takes 1 to ${this.batch} tokens, not ${tokens}`);
    const cmds = this.newCommands();
    cmds.trace = [];
    cmds.begin();
    try {
      this.record({ cmds, tokens, output });
      return cmds.trace;
    } finally {
      cmds.abandon();
    }
  }

  probe(ids: readonly number[], start: number): Probe {
    const s = this.spec;
    const T = ids.length;
    this.writeInputs(ids, start);
    const layerBytes = T * s.hiddenSize * 4;
    const capture = this.alloc.alloc(layerBytes * (s.numLayers + 2), 'probe: hidden states');
    const all = this.alloc.alloc(T * s.vocabSize * 4, 'probe: logits');
    this.probeLogits = all;
    try {
      const cmds = this.stepCmds;
      cmds.begin();
      // Stage 0 is the embeddings, i + 1 layer i's output (both in x), the last the final norm (in h).
      this.record({ cmds, tokens: T, output: { kind: 'all' } }, (stage) => {
        cmds.copy(stage > s.numLayers ? this.act.h : this.act.x, capture, layerBytes, 0, stage * layerBytes).barrier();
      });
      cmds.submitAndWait();
      const hiddenAll = new Float32Array(T * s.hiddenSize * (s.numLayers + 2));
      download(this.alloc, cmds, capture, new Uint8Array(hiddenAll.buffer));
      const logits = new Float32Array(T * s.vocabSize);
      download(this.alloc, cmds, all, new Uint8Array(logits.buffer));
      const per = T * s.hiddenSize;
      const hidden = Array.from({ length: s.numLayers + 1 }, (_, i) => hiddenAll.slice(i * per, (i + 1) * per));
      return { hidden, finalNorm: hiddenAll.slice((s.numLayers + 1) * per), logits };
    } finally {
      this.probeLogits = undefined;
      this.alloc.free(capture);
      this.alloc.free(all);
    }
  }

  dispose(): void {
    this.device.waitIdle();
    for (const b of this.owned) this.alloc.free(b);
    this.owned.length = 0;
  }
}
