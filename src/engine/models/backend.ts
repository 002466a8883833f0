/**
 * What a session asks of a backend (GPU or CPU): run a batch of tokens through the model at given
 * positions, filling the KV cache, and hand back what the sampler needs from the last token.
 */
import type { KvCacheType } from './memory.js';
import type { ModelSpec } from './spec.js';

export type Output =
  | { readonly kind: 'none' }
  | { readonly kind: 'argmax' }
  | { readonly kind: 'logits' }
  | { readonly kind: 'topk'; readonly k: number };

export interface StepResult {
  readonly argmax?: number;
  /** The last token's logits [vocab]. */
  readonly logits?: Float32Array;
  /** The k best of the last token's logits, largest first. */
  readonly topk?: { readonly indices: number[]; readonly values: number[] };
}

export interface Probe {
  /** Hidden state after the embedding and after each layer, [tokens, hidden] each. */
  readonly hidden: Float32Array[];
  /** The final norm's output [tokens, hidden]. */
  readonly finalNorm: Float32Array;
  /** Logits of every token [tokens, vocab]. */
  readonly logits: Float32Array;
}

/** rewindLimit for ring capacities: unlimited unless a sliding layer's ring is shorter than the context. */
export function rewindLimit(layers: readonly { window: number | null; capacity: number }[], ctx: number): number {
  let limit = Infinity;
  for (const l of layers) if (l.window !== null && l.capacity < ctx) limit = Math.min(limit, l.capacity - l.window + 1);
  return limit;
}

export interface Backend {
  readonly spec: ModelSpec;
  /** Context length: positions 0 .. ctx - 1. */
  readonly ctx: number;
  /** Most tokens one step takes (prompts are prefilled in batches of this size). */
  readonly batch: number;
  readonly name: string;
  /**
   * How many trailing cached tokens can be dropped and recomputed: sliding-window layers keep a ring
   * of window + batch - 1 slots, so going back further would read overwritten keys.
   */
  readonly rewindLimit: number;
  /** The largest k a step's top-k output takes (the sampler asks for the whole logits past it). */
  readonly maxTopK: number;
  /** How its KV cache stores keys and values. */
  readonly kvCache: KvCacheType;
  /** Runs ids at positions start, start + 1, ... (at most `batch` of them). */
  step(ids: readonly number[], start: number, output: Output): StepResult;
  /** A step that also returns every layer's hidden state and all logits (tests, quality reports). */
  probe(ids: readonly number[], start: number): Probe;
  dispose(): void;
}
