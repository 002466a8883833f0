/**
 * The Vulkan backend: the Forward steps recorded as kernels over GPU-resident weights, activations
 * and an f16 KV cache. A prompt batch is recorded and submitted as one command buffer; the one-token
 * decode step is recorded once per output kind and replayed, its per-token values (token id,
 * position, rope angles) written into small host-visible buffers that the kernels read.
 */
import { MatMul } from '../kernels/matmul.js';
import { type ActScratch, MatVec, type GpuMatrix, type QuantizedX, VALUES_PER_BLOCK, quantizedView } from '../kernels/matvec.js';
import { Ops, attentionSplits, sortTopK } from '../kernels/ops.js';
import { inverseFrequencies, ropeTable } from '../kernels/rope-table.js';
import { Commands } from '../vulkan/commands.js';
import type { Device } from '../vulkan/device.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { download } from '../vulkan/transfer.js';
import { ConfigError, UnsupportedShapeError } from '../errors.js';
import { ARCHITECTURES } from './architectures.js';
import { type Backend, type Output, type Probe, type StepResult, rewindLimit } from './backend.js';
import { type Act, type Forward, forwardPass } from './forward.js';
import type { Activation, ModelSpec } from './spec.js';
import type { GpuWeights } from './weights.js';

export interface GpuBackendOptions {
  readonly ctx: number;
  /** Tokens per prefill batch (default 256). */
  readonly batch?: number;
  /** GPU timestamps after every dispatch, read with lastProfile() (bench:decode). */
  readonly profile?: boolean;
  /**
   * false: INT8 and INT4 projections take float activations even where the device has integer dot
   * products (tests: then decode computes what the CPU reference does, up to summation order).
   */
  readonly integerDot?: boolean;
}

interface LayerCache {
  readonly k: GpuBuffer;
  readonly v: GpuBuffer;
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
    const per = VALUES_PER_BLOCK[m.format];
    if (m.cols % per !== 0 || (m.format === 'q4' && m.cols % m.group !== 0)) {
      throw new UnsupportedShapeError(`${name}: rows of ${m.cols} ${m.format} values; the GPU kernels read rows in blocks of ${m.format === 'q4' ? m.group : per}`, { hint });
    }
  }
}

export class GpuBackend implements Backend, Forward {
  readonly spec: ModelSpec;
  readonly ctx: number;
  readonly batch: number;
  readonly rewindLimit: number;
  readonly name: string;
  private readonly mv: MatVec;
  private readonly mm: MatMul;
  private readonly ops: Ops;
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
  private rec: Recording | undefined;
  static readonly MAX_TOPK = 1024;

  constructor(readonly device: Device, private readonly alloc: Allocator, private readonly weights: GpuWeights, spec: ModelSpec, private readonly opts: GpuBackendOptions) {
    checkShapes(spec, weights, device);
    this.spec = spec;
    this.ctx = opts.ctx;
    // Every activation buffer of a batch is bound whole: a batch stays within one storage-buffer range.
    const maxRange = Math.min(device.info.maxStorageBufferRange, device.info.maxMemoryAllocationSize);
    const widest = 4 * Math.max(spec.hiddenSize, spec.numHeads * spec.headDim, spec.intermediateSize);
    this.batch = Math.max(1, Math.min(opts.batch ?? 256, opts.ctx, Math.floor(maxRange / widest)));
    this.name = device.info.name;
    this.mv = new MatVec(device, alloc, opts.integerDot === false ? { integerDot: false } : {});
    this.mm = new MatMul(device, alloc);
    this.ops = new Ops(device);
    this.quantizedInputs = this.mv.integerDot && [...weights.matrices.values()].some((m) => m.format === 'q8' || m.format === 'q4');
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
        const bytes = spec.numKvHeads * capacity * spec.headDim * 2;
        const slot = spec.numKvHeads * spec.headDim * 2;
        if (bytes > maxRange) {
          throw new ConfigError(`--ctx ${this.ctx}: layer ${l.index}'s keys take ${bytes} bytes, more than this device binds in one buffer (${maxRange} bytes)`, {
            hint: `use --ctx ${Math.floor(maxRange / slot) - (l.window === null ? 0 : B - 1)} or less on ${device.info.name}`,
          });
        }
        return { k: a(bytes / 4, `layer ${l.index} keys`), v: a(bytes / 4, `layer ${l.index} values`), capacity };
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
    return attentionSplits(Math.min(this.ctx, this.spec.layers[layer]!.window ?? this.ctx));
  }

  private maxSplits(): number {
    return Math.max(...this.spec.layers.map((_, i) => this.splits(i)));
  }

  private newCommands(): Commands {
    const c = new Commands(this.device);
    if (this.opts.profile === true) c.enableProfiling();
    return c;
  }

  /** Per-dispatch GPU times of the last step (with the profile option). */
  lastProfile(): { label: string; us: number }[] {
    return this.lastCmds?.profile() ?? [];
  }

  // ---- Forward: each step records kernels for the current recording's tokens, then a barrier. ----

  private get r(): Recording {
    if (this.rec === undefined) throw new Error('GpuBackend: a Forward step outside a recording');
    return this.rec;
  }

  private matrix(name: string): GpuMatrix {
    const m = this.weights.matrices.get(name);
    if (m === undefined) throw new Error(`weights: no matrix ${name}`);
    return m;
  }

  private vector(name: string): GpuBuffer {
    const v = this.weights.vectors.get(name);
    if (v === undefined) throw new Error(`weights: no vector ${name}`);
    return v;
  }

  embed(): void {
    this.recordHeld();
    this.xqMemo = undefined;
    const { cmds, tokens } = this.r;
    const e = this.weights.embedding;
    this.ops.embed(cmds, e.table, this.ids, this.act.x, tokens, e.scale);
    cmds.barrier();
  }

  norm(src: Act, weight: string, dst: Act): void {
    // A held addNorm into this stream (Gemma: x += post-norm(h), then h = pre-norm(x)) joins this
    // norm in one dispatch.
    const held = this.heldAddNorm !== undefined && this.heldAddNorm.dst === src && dst !== src ? this.heldAddNorm : undefined;
    if (held === undefined) this.recordHeld();
    this.heldAddNorm = undefined;
    this.xqMemo = undefined;
    const { cmds, tokens } = this.r;
    const n = this.spec.hiddenSize;
    // In a decode step the norm also writes its output as int8 activations, for the integer-dot
    // projections that read it (q, k, v; gate and up): they then skip quantize_x.
    const quant = tokens === 1 && n <= this.ops.maxQuantRow ? this.quantScratch(n) : undefined;
    const q = quant === undefined ? {} : { quant };
    if (held === undefined) {
      this.ops.rmsnorm(cmds, this.act[src], this.vector(weight), this.act[dst], tokens, n, this.spec.rmsNormEps, this.spec.normWeightOffset, q);
    } else {
      this.ops.rmsnorm(cmds, this.act[held.src], this.vector(held.weight), this.act[src], tokens, n, this.spec.rmsNormEps, this.spec.normWeightOffset, { add: true, next: { w: this.vector(weight), out: this.act[dst] }, ...q });
    }
    if (quant !== undefined) this.xqMemo = { src: dst, cols: n, scratch: quant };
    cmds.barrier();
  }

  /** Held, not recorded: ropeAndCache norms the heads of q and k in its own dispatch. */
  headNorm(buf: 'q' | 'k', weight: string, heads: number): void {
    this.recordHeldAddNorm();
    if (this.heldHeadNorms[buf] !== undefined) this.recordHeldHeadNorms();
    this.xqMemo = undefined;
    this.heldHeadNorms[buf] = { weight, heads };
  }

  /**
   * int8 activations of an activation buffer, as the last step left them: written by the step that
   * produced it (the norm before q, k, v, gate and up; attention's combine pass before o; the gated
   * MLP before down), or by the quantize_x of the previous projection of the same input. Cleared by
   * every step that writes another activation.
   */
  private xqMemo: { src: Act; cols: number; scratch: ActScratch } | undefined;

  /** The int8 form of `src` for matrix m if a previous step left it (INT8 and INT4 only). */
  private quantizedFor(src: Act, m: GpuMatrix): QuantizedX | undefined {
    const memo = this.xqMemo;
    if (memo === undefined || memo.src !== src || memo.cols !== m.cols || (m.format !== 'q8' && m.format !== 'q4')) return undefined;
    return quantizedView(memo.scratch, m.format);
  }

  /**
   * The int8 form of `src` for a decode step's projection m on the integer-dot path: as a previous
   * step left it, else made now by quantize_x (and remembered for the next projection of `src`).
   */
  private quantizedInput(src: Act, m: GpuMatrix): QuantizedX | undefined {
    const { cmds, tokens } = this.r;
    if (tokens !== 1) return undefined;
    const xq = this.quantizedFor(src, m);
    if (xq !== undefined || !this.mv.dotPath(m.format)) return xq;
    const made = this.mv.quantizeX(cmds, this.act[src], m.cols, m.format);
    this.xqMemo = { src, cols: m.cols, scratch: this.mv.scratch(m.cols) };
    return made;
  }

  /** Scratch for a decode step's producer to write its output of n values as int8 activations, where a projection can use it. */
  private quantScratch(n: number, slot: 'in' | 'out' = 'in'): ActScratch | undefined {
    return this.quantizedInputs && n % 32 === 0 ? this.mv.scratch(n, slot) : undefined;
  }

  linear(src: Act, weight: string, dst: Act, bias?: string): void {
    this.recordHeld();
    const { cmds, tokens } = this.r;
    const m = this.matrix(weight);
    const b = bias === undefined ? undefined : this.vector(bias);
    if (tokens === 1) {
      const xq = this.quantizedInput(src, m);
      this.mv.record(cmds, m, this.act[src], this.act[dst], { ...(b === undefined ? {} : { bias: b }), ...(xq === undefined ? {} : { xq }) });
      if (dst === src) this.xqMemo = undefined;
    } else {
      this.mm.record(cmds, m, this.act[src], this.act[dst], tokens);
      if (b !== undefined) {
        cmds.barrier();
        this.ops.add(cmds, this.act[dst], b, this.act[dst], tokens * m.rows, m.rows);
      }
    }
    cmds.barrier();
  }

  gateUp(src: Act, gate: string, up: string, act: Activation): void {
    this.recordHeld();
    const { cmds, tokens } = this.r;
    const g = this.matrix(gate);
    const u = this.matrix(up);
    const xq = tokens === 1 ? this.quantizedFor(src, g) : undefined;
    this.xqMemo = undefined;
    if (tokens === 1 && g.format === u.format) {
      // The gated output also as int8 activations, for the down projection.
      // Into a scratch of its own: it reads the norm's int8 activations while it writes these.
      const quantOut = this.quantScratch(g.rows, 'out');
      this.mv.record(cmds, g, this.act[src], this.act.g, { up: u, act, ...(xq === undefined ? {} : { xq }), ...(quantOut === undefined ? {} : { quantOut }) });
      if (quantOut !== undefined) this.xqMemo = { src: 'g', cols: g.rows, scratch: quantOut };
    } else {
      this.mm.record(cmds, g, this.act[src], this.act.g, tokens);
      this.mm.record(cmds, u, this.act[src], this.up, tokens);
      cmds.barrier();
      this.ops.gated(cmds, act, this.act.g, this.up, this.act.g, tokens * g.rows);
    }
    cmds.barrier();
  }

  linearAdd(src: Act, weight: string, dst: Act): void {
    this.recordHeld();
    const { cmds, tokens } = this.r;
    const m = this.matrix(weight);
    if (m.rows !== this.spec.hiddenSize) throw new Error(`linearAdd: ${weight} does not project to the hidden size`);
    const xq = this.quantizedInput(src, m);
    this.xqMemo = undefined;
    if (tokens === 1) {
      this.mv.record(cmds, m, this.act[src], this.act[dst], { accumulate: true, ...(xq === undefined ? {} : { xq }) });
    } else {
      this.mm.record(cmds, m, this.act[src], this.tmp, tokens);
      cmds.barrier();
      this.ops.add(cmds, this.act[dst], this.tmp, this.act[dst], tokens * m.rows);
    }
    cmds.barrier();
  }

  /**
   * Held, not recorded: if the next step is the norm of the same stream, one dispatch does both
   * (norm()); any other step, the end of the pass and a probe's capture record it first (recordHeld()).
   */
  addNorm(dst: Act, src: Act, weight: string): void {
    this.recordHeld();
    this.xqMemo = undefined;
    this.heldAddNorm = { dst, src, weight };
  }

  private heldAddNorm: { dst: Act; src: Act; weight: string } | undefined;
  private heldHeadNorms: { q?: { weight: string; heads: number }; k?: { weight: string; heads: number } } = {};

  /** Records the steps held for fusion with the next one, which turned out not to fuse. */
  private recordHeld(): void {
    this.recordHeldAddNorm();
    this.recordHeldHeadNorms();
  }

  private recordHeldAddNorm(): void {
    const held = this.heldAddNorm;
    if (held === undefined) return;
    this.heldAddNorm = undefined;
    const { cmds, tokens } = this.r;
    this.ops.rmsnorm(cmds, this.act[held.src], this.vector(held.weight), this.act[held.dst], tokens, this.spec.hiddenSize, this.spec.rmsNormEps, this.spec.normWeightOffset, { add: true });
    cmds.barrier();
  }

  private recordHeldHeadNorms(): void {
    const { cmds, tokens } = this.r;
    for (const buf of ['q', 'k'] as const) {
      const held = this.heldHeadNorms[buf];
      if (held === undefined) continue;
      this.ops.rmsnorm(cmds, this.act[buf], this.vector(held.weight), this.act[buf], tokens * held.heads, this.spec.headDim, this.spec.rmsNormEps, this.spec.normWeightOffset);
    }
    if (this.heldHeadNorms.q !== undefined || this.heldHeadNorms.k !== undefined) cmds.barrier();
    this.heldHeadNorms = {};
  }

  ropeAndCache(layer: number): void {
    // Held norms of both q's and k's heads (Gemma 3) join the rotation.
    const { q: qn, k: kn } = this.heldHeadNorms;
    const s = this.spec;
    const fused = qn !== undefined && kn !== undefined && qn.heads === s.numHeads && kn.heads === s.numKvHeads;
    if (fused) this.heldHeadNorms = {};
    this.recordHeld();
    this.xqMemo = undefined;
    const { cmds, tokens } = this.r;
    const c = this.caches[layer]!;
    const table = this.ropeTables.get(this.layerRope[layer]!)!.buf;
    const norm = fused ? { q: this.vector(qn.weight), k: this.vector(kn.weight), eps: s.rmsNormEps, offset: s.normWeightOffset } : undefined;
    this.ops.ropeStore(cmds, this.act.q, this.act.k, this.act.v, table, this.positions, c.k, c.v, { tokens, heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim, capacity: c.capacity }, norm);
    cmds.barrier();
  }

  attention(layer: number, dst: Act): void {
    this.recordHeld();
    this.xqMemo = undefined;
    const { cmds, tokens } = this.r;
    const s = this.spec;
    const c = this.caches[layer]!;
    // In a decode step the combine pass also writes o as int8 activations, for the output projection.
    const quant = tokens === 1 ? this.quantScratch(s.numHeads * s.headDim) : undefined;
    const quantized = this.ops.attention(cmds, this.act.q, c.k, c.v, this.positions, this.act[dst], {
      tokens, heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim, capacity: c.capacity, positions: this.ctx,
      window: s.layers[layer]!.window ?? 0, scale: s.queryPreAttnScalar ** -0.5, softcap: s.attnLogitSoftcap ?? 0,
      // One token: split its positions over workgroups.
      splits: tokens === 1 ? this.splits(layer) : 1,
    }, this.attnPart, quant);
    if (quantized) this.xqMemo = { src: dst, cols: s.numHeads * s.headDim, scratch: quant! };
    cmds.barrier();
  }

  logits(src: Act): void {
    this.recordHeld();
    const { cmds, tokens, output } = this.r;
    const xq = tokens === 1 ? this.quantizedFor(src, this.weights.lmHead) : undefined;
    this.xqMemo = undefined;
    const s = this.spec;
    const cap = s.finalLogitSoftcap;
    if (output.kind === 'none') return;
    if (output.kind === 'all') {
      // Probe: logits of every token, into the MLP scratch (tokens x vocab floats fit when checked).
      const all = this.probeLogits!;
      this.mm.record(cmds, this.weights.lmHead, this.act[src], all, tokens);
      cmds.barrier();
      if (cap !== null) this.ops.softcap(cmds, all, tokens * s.vocabSize, cap);
      cmds.barrier();
      return;
    }
    let x = this.act[src];
    if (tokens > 1) {
      cmds.copy(x, this.last, s.hiddenSize * 4, (tokens - 1) * s.hiddenSize * 4, 0);
      cmds.barrier();
      x = this.last;
    }
    this.mv.record(cmds, this.weights.lmHead, x, this.logitsBuf, xq === undefined ? {} : { xq });
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

  /** Records a whole forward pass; a failure leaves no half-open recording behind. */
  private record(r: Recording, observe?: (stage: number) => void): void {
    this.rec = r;
    try {
      forwardPass(ARCHITECTURES[this.spec.family], this, observe === undefined ? undefined : (stage) => { this.recordHeld(); observe(stage); });
      this.recordHeld();
    } catch (e) {
      r.cmds.abandon();
      throw e;
    } finally {
      this.rec = undefined;
      this.heldAddNorm = undefined;
      this.heldHeadNorms = {};
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
