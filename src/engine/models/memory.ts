/**
 * Memory plans: bytes of weights under each storage scheme, plus the KV cache for a context length.
 * Pure arithmetic over the ModelSpec; `inspect` prints it and `doctor` compares it with the heaps.
 */
import { type WeightFormat, matrixBytes } from '../quant/layouts.js';
import { ConfigError } from '../errors.js';
import type { ModelSpec } from './spec.js';
import { expectedTensors } from './tensors.js';

export type Scheme = 'bf16' | 'int8' | 'int4' | 'mixed';
export const SCHEMES: readonly Scheme[] = ['bf16', 'int8', 'int4', 'mixed'];

export type TensorRole = 'embedding' | 'attention' | 'mlp' | 'output' | 'small';

export function tensorRole(canonical: string, shape: readonly number[]): TensorRole {
  if (shape.length < 2) return 'small';
  if (canonical === 'embed_tokens.weight') return 'embedding';
  if (canonical === 'lm_head.weight') return 'output';
  if (canonical.includes('.self_attn.')) return 'attention';
  if (canonical.includes('.mlp.')) return 'mlp';
  return 'small';
}

/**
 * The format each role gets under a scheme. `mixed` is the plan of the quantize command:
 * attention INT8 per row, MLP INT4 grouped, embedding (and output) INT8 per row; `int4` puts every
 * projection and an untied output head in INT4, the embedding in INT8.
 */
export function formatFor(scheme: Scheme, role: TensorRole, group: number): WeightFormat {
  if (role === 'small' || scheme === 'bf16') return { kind: 'float', bytesPerElement: 2 };
  // The embedding stays INT8 under every scheme: the lookup kernel reads INT8 rows (and the tied
  // output head reads the same table).
  if (scheme === 'int8' || role === 'embedding') return { kind: 'int8' };
  if (scheme === 'int4') return { kind: 'int4', group };
  return role === 'mlp' ? { kind: 'int4', group } : { kind: 'int8' };
}

/** Bytes of all weights the forward pass reads under a scheme. */
export function weightBytes(spec: ModelSpec, scheme: Scheme, group: number): number {
  let total = 0;
  for (const [name, shape] of expectedTensors(spec)) {
    const role = tensorRole(name, shape);
    const rows = shape[0]!;
    const cols = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    total += matrixBytes(rows, cols, formatFor(scheme, role, group));
  }
  return total;
}

/** Elements of all weights the forward pass reads. */
export function parameterCount(spec: ModelSpec): number {
  let n = 0;
  for (const shape of expectedTensors(spec).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * How the KV cache stores keys and values: f16, or q8 (int8 in blocks of 32 values of a head's row,
 * one f32 scale a block: 9 bits a value; docs/formats.md "KV cache").
 */
export type KvCacheType = 'f16' | 'q8';
export const KV_CACHE_TYPES: readonly KvCacheType[] = ['f16', 'q8'];

/** Bytes of the values of one position of one kv head, in keys (or in values): 2 a value (f16) or 1 (q8). */
export function kvValueBytes(headDim: number, kv: KvCacheType): number {
  return kv === 'f16' ? 2 * headDim : headDim;
}

/** Bytes one position of one kv head takes in keys (or in values) of a cache of this type, q8's block scales included. */
export function kvRowBytes(headDim: number, kv: KvCacheType): number {
  return kvValueBytes(headDim, kv) + (kv === 'q8' ? (headDim / 32) * 4 : 0);
}

/** Whether a head_dim takes a cache of this type: q8 blocks are 32 values of a head's row. */
export function takesKvCache(headDim: number, kv: KvCacheType): boolean {
  return kv !== 'q8' || headDim % 32 === 0;
}

/**
 * KV cache bytes (keys and values) for `ctx` positions. A sliding-window layer keeps only its
 * window of positions, so long contexts cost only the global layers.
 */
export function kvCacheBytes(spec: ModelSpec, ctx: number, kv: KvCacheType = 'f16'): number {
  const perPosition = 2 * spec.numKvHeads * kvRowBytes(spec.headDim, kv);
  let total = 0;
  for (const layer of spec.layers) total += perPosition * (layer.window === null ? ctx : Math.min(ctx, layer.window));
  return total;
}

export interface MemoryPlanRow {
  readonly scheme: Scheme;
  readonly weights: number;
  readonly kvCache: number;
  readonly total: number;
}

export function memoryPlan(spec: ModelSpec, ctx: number, group: number, kvType: KvCacheType = 'f16'): MemoryPlanRow[] {
  const kv = kvCacheBytes(spec, ctx, kvType);
  return SCHEMES.map((scheme) => {
    const weights = weightBytes(spec, scheme, group);
    return { scheme, weights, kvCache: kv, total: weights + kv };
  });
}

/** Why a model's heads cannot take a cache type (q8 blocks are 32 values of a head's row), or undefined where they can. */
export function kvCacheRefusal(spec: ModelSpec, kv: KvCacheType): string | undefined {
  if (!takesKvCache(spec.headDim, kv)) return `--kv-cache q8: this model's head_dim ${spec.headDim} is not a multiple of 32 (a q8 block is 32 values of one head)`;
  return undefined;
}

/** Refuses a cache type a model's heads cannot take (kvCacheRefusal). */
export function checkKvCache(spec: ModelSpec, kv: KvCacheType): void {
  const refusal = kvCacheRefusal(spec, kv);
  if (refusal !== undefined) throw new ConfigError(refusal, { hint: 'use --kv-cache f16' });
}
