/**
 * The TypeScript reference backend: the same Forward steps computed on the CPU from the kernels'
 * references (src/engine/kernels/reference.ts), with a KV cache that rounds as the GPU's does (f16 or q8). It is what the
 * GPU is tested against and what `--device cpu` runs when asked; it is never a silent fallback.
 * Weights are decoded to f32 tensor by tensor as they are first used, so it suits small models.
 */
import * as os from 'node:os';
import { UnicornError } from '../errors.js';
import { attentionRef, gatedRef, rmsnormRef, ropeRef, argmaxRef, roundF16, roundQ8, topkRef } from '../kernels/reference.js';
import { inverseFrequencies, ropeTable } from '../kernels/rope-table.js';
import { formatInfo, valuesPerRow } from '../kernels/weight-formats.js';
import { ARCHITECTURES } from './architectures.js';
import { type Backend, type Output, type Probe, type StepResult, rewindLimit } from './backend.js';
import { type Act, type Forward, forwardPass } from './forward.js';
import { type KvCacheType, checkKvCache } from './memory.js';
import type { ModelFiles } from './model-dir.js';
import type { Activation, ModelSpec } from './spec.js';
import { tensorFormat } from './tensors.js';
import { embeddingScale } from './weights.js';

interface Batch {
  readonly positions: number[];
  readonly ids: readonly number[];
  readonly all: boolean;
}

export class CpuBackend implements Backend, Forward {
  readonly spec: ModelSpec;
  readonly ctx: number;
  readonly batch: number;
  readonly rewindLimit: number;
  readonly name = 'CPU (TypeScript reference)';
  readonly maxTopK = Infinity;
  private readonly tensors = new Map<string, Float32Array>();
  private readonly act = new Map<Act, Float32Array>();
  private readonly caches: { k: Float32Array; v: Float32Array; capacity: number }[];
  /** How the cache rounds what it stores (f16, or q8's blocks of a head's row). */
  readonly kvCache: KvCacheType;
  private readonly inv: Float32Array[];
  private cur: Batch | undefined;
  private logitsOut: Float32Array | undefined;

  constructor(private readonly model: ModelFiles, opts: { ctx: number; batch?: number; kvCache?: KvCacheType }) {
    this.kvCache = opts.kvCache ?? 'f16';
    checkKvCache(model.spec, this.kvCache);
    const spec = model.spec;
    this.spec = spec;
    this.ctx = opts.ctx;
    this.batch = Math.max(1, Math.min(opts.batch ?? 64, opts.ctx));
    const f32Bytes = [...model.bound.tensors.values()].reduce((a, t) => a + (t.byteLength / (t.dtype === 'F32' ? 4 : 2)) * 4, 0);
    if (f32Bytes > os.freemem() / 2) {
      throw new UnicornError(`--device cpu needs about ${(f32Bytes / 1e9).toFixed(1)} GB of RAM for this model's weights in f32, and ${(os.freemem() / 1e9).toFixed(1)} GB is free`, {
        hint: 'the CPU path is the reference for small models; run on the GPU (leave out --device cpu)',
      });
    }
    const kvWidth = spec.numKvHeads * spec.headDim;
    this.caches = spec.layers.map((l) => {
      const capacity = l.window === null ? this.ctx : Math.min(this.ctx, l.window + this.batch - 1);
      return { k: new Float32Array(capacity * kvWidth), v: new Float32Array(capacity * kvWidth), capacity };
    });
    this.rewindLimit = rewindLimit(spec.layers.map((l, i) => ({ window: l.window, capacity: this.caches[i]!.capacity })), this.ctx);
    this.inv = spec.layers.map((l) => inverseFrequencies(l.rope, spec.headDim));
  }

  /**
   * A tensor as f32, by its format's dequantizer (kernels/weight-formats.ts): float tensors decoded,
   * quantized ones dequantized with their params (docs/formats.md).
   */
  private weight(name: string): Float32Array {
    let w = this.tensors.get(name);
    if (w === undefined) {
      const t = this.model.bound.tensors.get(name);
      if (t === undefined) throw new Error(`weights: no tensor ${name}`);
      const format = tensorFormat(t);
      if (format === undefined) throw new Error(`weights: ${name} is ${t.dtype}, which bindCheckpoint refuses`);
      const q = t.quant;
      const params = q === undefined ? null : q.params.file.readAll(q.params.name);
      const rows = t.shape[0] ?? 1;
      w = formatInfo(format).dequantize(t.file.readAll(t.name), params, rows, valuesPerRow(format, t.shape[1] ?? 1), q?.group ?? 0);
      this.tensors.set(name, w);
    }
    return w;
  }

  private get b(): Batch {
    if (this.cur === undefined) throw new Error('CpuBackend: a Forward step outside a step');
    return this.cur;
  }

  private get(a: Act): Float32Array {
    const v = this.act.get(a);
    if (v === undefined) throw new Error(`activation ${a} read before it was written`);
    return v;
  }

  embed(): void {
    const { ids } = this.b;
    const h = this.spec.hiddenSize;
    const table = this.weight('embed_tokens.weight');
    const t = this.model.bound.tensors.get('embed_tokens.weight')!;
    const scale = embeddingScale(this.spec.embeddingScale, t.quant !== undefined ? 'BF16' : t.dtype);
    const x = new Float32Array(ids.length * h);
    ids.forEach((id, i) => { for (let j = 0; j < h; j++) x[i * h + j] = table[id * h + j]! * scale; });
    this.act.set('x', x);
  }

  norm(src: Act, weight: string, dst: Act): void {
    const h = this.spec.hiddenSize;
    this.act.set(dst, rmsnormRef(this.get(src), this.weight(weight), this.b.ids.length, h, this.spec.rmsNormEps, this.spec.normWeightOffset));
  }

  headNorm(buf: 'q' | 'k', weight: string, heads: number): void {
    this.act.set(buf, rmsnormRef(this.get(buf), this.weight(weight), this.b.ids.length * heads, this.spec.headDim, this.spec.rmsNormEps, this.spec.normWeightOffset));
  }

  private project(x: Float32Array, weight: string, tokens: number): Float32Array {
    const w = this.weight(weight);
    const rows = w.length / (weight === 'embed_tokens.weight' ? this.spec.hiddenSize : this.inputWidth(weight));
    const cols = w.length / rows;
    const y = new Float32Array(tokens * rows);
    for (let t = 0; t < tokens; t++) {
      for (let r = 0; r < rows; r++) {
        let acc = 0;
        for (let c = 0; c < cols; c++) acc += w[r * cols + c]! * x[t * cols + c]!;
        y[t * rows + r] = acc;
      }
    }
    return y;
  }

  /** Columns of a projection (its input width), from the spec. */
  private inputWidth(weight: string): number {
    const s = this.spec;
    if (weight.endsWith('o_proj.weight')) return s.numHeads * s.headDim;
    if (weight.endsWith('down_proj.weight')) return s.intermediateSize;
    return s.hiddenSize;
  }

  linear(src: Act, weight: string, dst: Act, bias?: string): void {
    const y = this.project(this.get(src), weight, this.b.ids.length);
    if (bias !== undefined) {
      const b = this.weight(bias);
      for (let i = 0; i < y.length; i++) y[i] = y[i]! + b[i % b.length]!;
    }
    this.act.set(dst, y);
  }

  gateUp(src: Act, gate: string, up: string, act: Activation): void {
    const x = this.get(src);
    const tokens = this.b.ids.length;
    this.act.set('g', gatedRef(act, this.project(x, gate, tokens), this.project(x, up, tokens)));
  }

  linearAdd(src: Act, weight: string, dst: Act): void {
    const y = this.project(this.get(src), weight, this.b.ids.length);
    const x = this.get(dst);
    this.act.set(dst, x.map((v, i) => v + y[i]!));
  }

  addNorm(dst: Act, src: Act, weight: string): void {
    const n = rmsnormRef(this.get(src), this.weight(weight), this.b.ids.length, this.spec.hiddenSize, this.spec.rmsNormEps, this.spec.normWeightOffset);
    const x = this.get(dst);
    this.act.set(dst, x.map((v, i) => v + n[i]!));
  }

  ropeAndCache(layer: number): void {
    const s = this.spec;
    const { positions } = this.b;
    const table = ropeTable(this.inv[layer]!, positions) as Float32Array;
    const tokens = this.b.ids.length;
    this.act.set('q', ropeRef(this.get('q'), table, tokens, s.numHeads, s.headDim));
    const k = ropeRef(this.get('k'), table, tokens, s.numKvHeads, s.headDim);
    this.act.set('k', k);
    const v = this.get('v');
    const c = this.caches[layer]!;
    const d = s.headDim;
    // Cache layout [kvHeads, capacity, d], values rounded as the GPU stores them (f16, or q8 by blocks of a head's row).
    const round = this.kvCache === 'q8' ? roundQ8 : roundF16;
    positions.forEach((p, t) => {
      const slot = p % c.capacity;
      for (let h = 0; h < s.numKvHeads; h++) {
        const at = (t * s.numKvHeads + h) * d;
        c.k.set(round(k.subarray(at, at + d)), (h * c.capacity + slot) * d);
        c.v.set(round(v.subarray(at, at + d)), (h * c.capacity + slot) * d);
      }
    });
  }

  attention(layer: number, dst: Act): void {
    const s = this.spec;
    const c = this.caches[layer]!;
    this.act.set(dst, attentionRef(this.get('q'), c.k, c.v, this.b.positions, {
      heads: s.numHeads, kvHeads: s.numKvHeads, d: s.headDim, capacity: c.capacity, window: s.layers[layer]!.window ?? 0,
      scale: s.queryPreAttnScalar ** -0.5, softcap: s.attnLogitSoftcap ?? 0,
    }));
  }

  logits(src: Act): void {
    const s = this.spec;
    const h = s.hiddenSize;
    const x = this.get(src);
    const tokens = this.b.ids.length;
    const rows = this.b.all ? x : x.subarray((tokens - 1) * h, tokens * h);
    const name = s.tieWordEmbeddings ? 'embed_tokens.weight' : 'lm_head.weight';
    const y = this.project(rows, name, this.b.all ? tokens : 1);
    const cap = s.finalLogitSoftcap;
    if (cap !== null) for (let i = 0; i < y.length; i++) y[i] = cap * Math.tanh(y[i]! / cap);
    this.logitsOut = y;
  }

  private run(ids: readonly number[], start: number, all: boolean, observe?: (stage: number) => void): Float32Array {
    if (ids.length === 0 || ids.length > this.batch) throw new RangeError(`a step takes 1 to ${this.batch} tokens, not ${ids.length}`);
    if (start < 0 || start + ids.length > this.ctx) throw new RangeError(`positions ${start}..${start + ids.length - 1} are outside the context of ${this.ctx}`);
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= this.spec.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary of ${this.spec.vocabSize}`);
    this.cur = { ids, positions: ids.map((_, i) => start + i), all };
    try {
      forwardPass(ARCHITECTURES[this.spec.family], this, observe);
      return this.logitsOut!;
    } finally {
      this.cur = undefined;
    }
  }

  step(ids: readonly number[], start: number, output: Output): StepResult {
    const logits = this.run(ids, start, false);
    switch (output.kind) {
      case 'none': return {};
      case 'argmax': return { argmax: argmaxRef(logits) };
      case 'topk': return { topk: topkRef(logits, output.k) };
      case 'logits': return { logits };
    }
  }

  probe(ids: readonly number[], start: number): Probe {
    const hidden: Float32Array[] = [];
    let finalNorm = new Float32Array(0);
    const logits = this.run(ids, start, true, (stage) => {
      if (stage <= this.spec.numLayers) hidden.push(this.get('x').slice());
      else finalNorm = this.get('h').slice();
    });
    return { hidden, finalNorm, logits };
  }

  dispose(): void {
    this.tensors.clear();
    this.act.clear();
  }
}
