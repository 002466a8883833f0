/**
 * Fusion: a pure function from the steps an architecture records (steps.ts) to the steps the GPU
 * backend lowers, one dispatch group each. Every rule has a name, and each says what it saves:
 *
 * - `add-norm`: Gemma's post-norm added into the residual stream (addNorm) and the norm that reads
 *   the stream next, in one rmsnorm dispatch (one read of the stream instead of three).
 * - `head-norms-rope`: Gemma's q/k head norms, the rotary embedding and the KV cache writes, in one
 *   rope_store dispatch (q and k read and written once).
 * - `int8-activations` (decode steps, where some projection is INT8 or INT4 on a device with integer
 *   dot products): the step that produces a projection's input also writes it as int8 activations
 *   (shaders/quant_act.glsl) — the norm for q/k/v and gate/up, attention's combine pass for o, the
 *   gated MLP for down — so the projection skips a quantize_x pass; where no producer can, the first
 *   projection of an activation quantizes it and the ones after it reuse that.
 *
 * UNICORN_NO_FUSION=1 (or `fusion: false`) lowers every recorded step as it is: one dispatch group
 * each, float activations for INT8 and quantize_x before every INT4 projection. Fused and unfused
 * passes agree within the f16-cache tolerance (test/engine/models/fuse.test.ts).
 */
import type { Act } from './forward.js';
import type { ModelSpec, Activation } from './spec.js';
import type { Step } from './steps.js';
import { type WeightFormat, takesInt8 } from '../kernels/weight-formats.js';

/** Where a projection's int8 input comes from: the int8 scratch its producer wrote ('in', or the gated MLP's 'out'), or quantize_x now. */
export type Int8Input = { readonly slot: 'in' | 'out' } | 'quantize';

export type FusedStep =
  | { readonly op: 'embed' }
  /** rmsnorm; `int8`: it also writes its output as int8 activations (the 'in' scratch). */
  | { readonly op: 'norm'; readonly src: Act; readonly weight: string; readonly dst: Act; readonly int8?: true }
  /** dst += norm(src); with `next` (add-norm), also next.out = norm(dst) with next.weight. */
  | { readonly op: 'addNorm'; readonly dst: Act; readonly src: Act; readonly weight: string; readonly next?: { readonly weight: string; readonly out: Act }; readonly int8?: true }
  /** Head norms of q and/or k (in that order), one barrier after them. */
  | { readonly op: 'headNorms'; readonly norms: readonly { readonly buf: 'q' | 'k'; readonly weight: string; readonly heads: number }[] }
  /** rope + cache writes; with `norms` (head-norms-rope), the q/k head norms first, in the same dispatch. */
  | { readonly op: 'ropeStore'; readonly layer: number; readonly norms?: { readonly q: string; readonly k: string } }
  | { readonly op: 'linear'; readonly src: Act; readonly weight: string; readonly dst: Act; readonly bias?: string; readonly x8?: Int8Input }
  | { readonly op: 'linearAdd'; readonly src: Act; readonly weight: string; readonly dst: Act; readonly x8?: Int8Input }
  /** Gated MLP input; `int8`: its output also as int8 activations (the 'out' scratch). */
  | { readonly op: 'gateUp'; readonly src: Act; readonly gate: string; readonly up: string; readonly act: Activation; readonly x8?: Int8Input; readonly int8?: true }
  /** `int8`: the combine pass also writes o as int8 activations. */
  | { readonly op: 'attention'; readonly layer: number; readonly dst: Act; readonly int8?: true }
  | { readonly op: 'logits'; readonly src: Act; readonly x8?: Int8Input }
  | { readonly op: 'observe'; readonly stage: number };

/** What fusion needs to know of the pass, the model's weights and the device. */
export interface FuseContext {
  readonly spec: ModelSpec;
  /** Tokens in the pass: 1 is a decode step (the only pass that uses int8 activations). */
  readonly tokens: number;
  /** Each matrix's stored format (and the output projection's, under 'lm_head.weight' even when tied). */
  readonly format: (weight: string) => { readonly format: WeightFormat; readonly rows: number; readonly cols: number };
  /** Some projection is INT8 or INT4 and the device has integer dot products. */
  readonly int8Activations: boolean;
  /** Whether a matrix of `format` takes the integer-dot path when its input comes as floats (MatVec.dotPath). */
  readonly dotPathForFloatX: (format: WeightFormat) => boolean;
  /** The longest row rmsnorm can also quantize (Ops.maxQuantRow). */
  readonly maxQuantRow: number;
  /** Decode attention's split count of a layer (the combine pass runs, and can quantize, only past 1). */
  readonly splits: (layer: number) => number;
  readonly fusion: boolean;
}

/** Whether fusion is on (UNICORN_NO_FUSION=1 turns it off). */
export function fusionEnabled(env = process.env['UNICORN_NO_FUSION']): boolean {
  return env !== '1';
}

const quantizable = (f: WeightFormat) => takesInt8(f);

export function fuse(steps: readonly Step[], c: FuseContext): FusedStep[] {
  const out: FusedStep[] = [];
  const s = c.spec;
  const decode = c.tokens === 1;
  const int8 = c.fusion && decode && c.int8Activations;
  // int8-activations: which activation the int8 scratch holds now, as the last step left it.
  let made: { act: Act; cols: number; slot: 'in' | 'out' } | undefined;
  /** A projection of `src` (cols wide) in `format`: the int8 input it reads, if any. */
  const inputFor = (src: Act, cols: number, format: WeightFormat, mayQuantize: boolean): Int8Input | undefined => {
    if (int8 && made !== undefined && made.act === src && made.cols === cols && quantizable(format)) return { slot: made.slot };
    if (decode && mayQuantize && c.dotPathForFloatX(format)) {
      // The first projection of src quantizes it; later ones of the same src reuse it.
      if (c.fusion) made = { act: src, cols, slot: 'in' };
      return 'quantize';
    }
    return undefined;
  };
  const normInt8 = (n: number) => int8 && n % 32 === 0 && n <= c.maxQuantRow;

  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    switch (step.op) {
      case 'embed':
        made = undefined;
        out.push(step);
        break;
      case 'norm': {
        const q = normInt8(s.hiddenSize);
        made = q ? { act: step.dst, cols: s.hiddenSize, slot: 'in' } : undefined;
        out.push({ ...step, ...(q ? { int8: true as const } : {}) });
        break;
      }
      case 'addNorm': {
        const next = steps[i + 1];
        if (c.fusion && next?.op === 'norm' && next.src === step.dst && next.dst !== step.dst) {
          // add-norm
          const q = normInt8(s.hiddenSize);
          made = q ? { act: next.dst, cols: s.hiddenSize, slot: 'in' } : undefined;
          out.push({ op: 'addNorm', dst: step.dst, src: step.src, weight: step.weight, next: { weight: next.weight, out: next.dst }, ...(q ? { int8: true as const } : {}) });
          i++;
        } else {
          made = undefined;
          out.push(step);
        }
        break;
      }
      case 'headNorm': {
        made = undefined;
        // head-norms-rope: both head norms (one per buffer), then the rotation.
        const norms: { buf: 'q' | 'k'; weight: string; heads: number }[] = [step];
        let j = i + 1;
        while (j < steps.length && steps[j]!.op === 'headNorm' && !norms.some((n) => n.buf === (steps[j] as { buf: 'q' | 'k' }).buf)) norms.push(steps[j++] as { op: 'headNorm'; buf: 'q' | 'k'; weight: string; heads: number });
        const q = norms.find((n) => n.buf === 'q');
        const k = norms.find((n) => n.buf === 'k');
        const rope = steps[j];
        if (c.fusion && rope?.op === 'ropeAndCache' && q !== undefined && k !== undefined && q.heads === s.numHeads && k.heads === s.numKvHeads) {
          out.push({ op: 'ropeStore', layer: rope.layer, norms: { q: q.weight, k: k.weight } });
          i = j;
        } else {
          out.push({ op: 'headNorms', norms: [...(q === undefined ? [] : [q]), ...(k === undefined ? [] : [k])] });
          i = j - 1;
        }
        break;
      }
      case 'ropeAndCache':
        made = undefined;
        out.push({ op: 'ropeStore', layer: step.layer });
        break;
      case 'linear': {
        const m = c.format(step.weight);
        const x8 = inputFor(step.src, m.cols, m.format, true);
        if (step.dst === step.src) made = undefined;
        out.push({ ...step, ...(x8 === undefined ? {} : { x8 }) });
        break;
      }
      case 'linearAdd': {
        const m = c.format(step.weight);
        const x8 = inputFor(step.src, m.cols, m.format, true);
        made = undefined;
        out.push({ ...step, ...(x8 === undefined ? {} : { x8 }) });
        break;
      }
      case 'gateUp': {
        const g = c.format(step.gate);
        const u = c.format(step.up);
        // The fused gated matrix x vector quantizes x itself where it must: no separate quantize_x.
        const x8 = inputFor(step.src, g.cols, g.format, false);
        made = undefined;
        const q = int8 && g.format === u.format && g.rows % 32 === 0;
        if (q) made = { act: 'g', cols: g.rows, slot: 'out' };
        out.push({ ...step, ...(x8 === undefined ? {} : { x8 }), ...(q ? { int8: true as const } : {}) });
        break;
      }
      case 'attention': {
        const qDim = s.numHeads * s.headDim;
        const q = int8 && qDim % 32 === 0 && s.headDim % 32 === 0 && c.splits(step.layer) > 1;
        made = q ? { act: step.dst, cols: qDim, slot: 'in' } : undefined;
        out.push({ ...step, ...(q ? { int8: true as const } : {}) });
        break;
      }
      case 'logits': {
        const m = c.format('lm_head.weight');
        const x8 = inputFor(step.src, m.cols, m.format, false);
        made = undefined;
        out.push({ ...step, ...(x8 === undefined ? {} : { x8 }) });
        break;
      }
      case 'observe':
        out.push(step);
        break;
    }
  }
  return out;
}
