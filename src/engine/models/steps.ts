/**
 * A forward pass as data. The Recorder implements Forward (forward.ts) and writes down each step an
 * architecture file calls, in order, with the activations it reads and writes and the weights it
 * uses: the same list for every backend and every batch size. What a backend does with it comes
 * after: the CPU reference computes the steps one by one; the GPU backend first fuses them
 * (fuse.ts: named rules, a pure function) and then lowers each fused step to dispatches.
 *
 * The list also says which tensors a model needs and their shapes (modelTensors): the checkpoint is
 * bound, loaded and quantized from it, so no second list of names can drift from the model code.
 */
import { type Act, type Architecture, type Forward, forwardPass } from './forward.js';
import type { Activation, ModelSpec } from './spec.js';

export type Step =
  | { readonly op: 'embed' }
  | { readonly op: 'norm'; readonly src: Act; readonly weight: string; readonly dst: Act }
  | { readonly op: 'headNorm'; readonly buf: 'q' | 'k'; readonly weight: string; readonly heads: number }
  | { readonly op: 'linear'; readonly src: Act; readonly weight: string; readonly dst: Act; readonly bias?: string }
  | { readonly op: 'linearAdd'; readonly src: Act; readonly weight: string; readonly dst: Act }
  | { readonly op: 'addNorm'; readonly dst: Act; readonly src: Act; readonly weight: string }
  | { readonly op: 'gateUp'; readonly src: Act; readonly gate: string; readonly up: string; readonly act: Activation }
  | { readonly op: 'ropeAndCache'; readonly layer: number }
  | { readonly op: 'attention'; readonly layer: number; readonly dst: Act }
  | { readonly op: 'logits'; readonly src: Act }
  /** A point where a probe reads the hidden state: 0 after the embedding, i + 1 after layer i. */
  | { readonly op: 'observe'; readonly stage: number };

/** Writes down the steps an architecture calls. */
export class Recorder implements Forward {
  readonly steps: Step[] = [];
  constructor(readonly spec: ModelSpec) {}
  embed(): void { this.steps.push({ op: 'embed' }); }
  norm(src: Act, weight: string, dst: Act): void { this.steps.push({ op: 'norm', src, weight, dst }); }
  headNorm(buf: 'q' | 'k', weight: string, heads: number): void { this.steps.push({ op: 'headNorm', buf, weight, heads }); }
  linear(src: Act, weight: string, dst: Act, bias?: string): void { this.steps.push({ op: 'linear', src, weight, dst, ...(bias === undefined ? {} : { bias }) }); }
  linearAdd(src: Act, weight: string, dst: Act): void { this.steps.push({ op: 'linearAdd', src, weight, dst }); }
  addNorm(dst: Act, src: Act, weight: string): void { this.steps.push({ op: 'addNorm', dst, src, weight }); }
  gateUp(src: Act, gate: string, up: string, act: Activation): void { this.steps.push({ op: 'gateUp', src, gate, up, act }); }
  ropeAndCache(layer: number): void { this.steps.push({ op: 'ropeAndCache', layer }); }
  attention(layer: number, dst: Act): void { this.steps.push({ op: 'attention', layer, dst }); }
  logits(src: Act): void { this.steps.push({ op: 'logits', src }); }
}

/** The steps of one whole pass; with `observe`, the probe's observation points among them. */
export function recordPass(arch: Architecture, spec: ModelSpec, observe = false): Step[] {
  const r = new Recorder(spec);
  forwardPass(arch, r, observe ? (stage) => r.steps.push({ op: 'observe', stage }) : undefined);
  return r.steps;
}

/** Values per token of each activation. */
export function actWidth(spec: ModelSpec, a: Act): number {
  switch (a) {
    case 'x': case 'h': return spec.hiddenSize;
    case 'q': case 'a': return spec.numHeads * spec.headDim;
    case 'k': case 'v': return spec.numKvHeads * spec.headDim;
    case 'g': return spec.intermediateSize;
  }
}

/** The weights a step reads, with their shapes ([out, in] for projections). */
export function stepWeights(step: Step, spec: ModelSpec): { readonly name: string; readonly shape: readonly number[] }[] {
  const w = (a: Act) => actWidth(spec, a);
  switch (step.op) {
    case 'embed': return [{ name: 'embed_tokens.weight', shape: [spec.vocabSize, spec.hiddenSize] }];
    case 'norm': return [{ name: step.weight, shape: [w(step.dst)] }];
    case 'addNorm': return [{ name: step.weight, shape: [w(step.dst)] }];
    case 'headNorm': return [{ name: step.weight, shape: [spec.headDim] }];
    case 'linear': return [{ name: step.weight, shape: [w(step.dst), w(step.src)] }, ...(step.bias === undefined ? [] : [{ name: step.bias, shape: [w(step.dst)] }])];
    case 'linearAdd': return [{ name: step.weight, shape: [w(step.dst), w(step.src)] }];
    case 'gateUp': return [{ name: step.gate, shape: [spec.intermediateSize, w(step.src)] }, { name: step.up, shape: [spec.intermediateSize, w(step.src)] }];
    // Tied: the output projection is the embedding table, already listed.
    case 'logits': return spec.tieWordEmbeddings ? [] : [{ name: 'lm_head.weight', shape: [spec.vocabSize, w(step.src)] }];
    case 'ropeAndCache': case 'attention': case 'observe': return [];
  }
}

/**
 * Every tensor the forward pass reads, with its shape, in the order the pass first reads it
 * (embedding, layer by layer, final norm, output projection): what a checkpoint must hold.
 */
export function modelTensors(arch: Architecture, spec: ModelSpec): Map<string, readonly number[]> {
  const m = new Map<string, readonly number[]>();
  for (const step of recordPass(arch, spec)) for (const t of stepWeights(step, spec)) if (!m.has(t.name)) m.set(t.name, t.shape);
  return m;
}
