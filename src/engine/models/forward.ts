/**
 * The vocabulary a forward pass is written in. Each architecture file (gemma3.ts, qwen2.ts, llama.ts)
 * spells out its decoder layer as a sequence of these steps over named activations; a backend
 * carries them out: the GPU backend records Vulkan kernels, the CPU backend (the reference for tests
 * and `--device cpu`) computes them in TypeScript. Every step acts on all tokens of the current batch
 * (the prompt chunk being prefilled, or the one token being decoded).
 *
 * Activations, each [tokens, width]:
 *   x  the residual stream [hidden]         h  a normed or projected copy of it [hidden]
 *   q  queries [heads * head_dim]           k, v  keys and values [kv_heads * head_dim]
 *   a  attention output [heads * head_dim]  g  the MLP's gated hidden [intermediate]
 */
import type { Activation, ModelSpec } from './spec.js';

export type Act = 'x' | 'h' | 'q' | 'k' | 'v' | 'a' | 'g';

export interface Forward {
  readonly spec: ModelSpec;
  /** x = embedding(ids) * embedding scale. */
  embed(): void;
  /** dst = rmsnorm(src) * (offset + weight), per token. */
  norm(src: Act, weight: string, dst: Act): void;
  /** The same over each head of q or k (Gemma 3's q_norm / k_norm). */
  headNorm(buf: 'q' | 'k', weight: string, heads: number): void;
  /** dst = src W^T (+ bias). */
  linear(src: Act, weight: string, dst: Act, bias?: string): void;
  /** dst += src W^T: an output projection added straight into the residual stream. */
  linearAdd(src: Act, weight: string, dst: Act): void;
  /** dst += rmsnorm(src) * (offset + weight): a post-norm added into the residual stream (Gemma). */
  addNorm(dst: Act, src: Act, weight: string): void;
  /** g = act(src Wgate^T) * (src Wup^T). */
  gateUp(src: Act, gate: string, up: string, act: Activation): void;
  /**
   * Rotary embedding of q and k with layer `layer`'s theta and scaling at each token's position; then
   * k and v join layer `layer`'s KV cache.
   */
  ropeAndCache(layer: number): void;
  /** dst = softmax(q K^T * scale) V over layer `layer`'s cache, with its causal or sliding mask. */
  attention(layer: number, dst: Act): void;
  /** logits = src W_out^T, for the tokens whose logits are wanted, then softcapped if configured. */
  logits(src: Act): void;
}

/** One architecture: its decoder layer and its output head, written against Forward. */
export interface Architecture {
  layer(f: Forward, i: number): void;
  head(f: Forward): void;
}

/**
 * The whole pass: embed, every layer, the head. `observe` (tests, probes) is called with 0 after the
 * embedding, i + 1 after layer i, and numLayers + 1 after the head.
 */
export function forwardPass(arch: Architecture, f: Forward, observe?: (stage: number) => void): void {
  f.embed();
  observe?.(0);
  for (let i = 0; i < f.spec.numLayers; i++) {
    arch.layer(f, i);
    observe?.(i + 1);
  }
  arch.head(f);
  observe?.(f.spec.numLayers + 1);
}
