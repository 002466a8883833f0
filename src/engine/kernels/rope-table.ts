/**
 * RoPE frequencies and cos/sin tables, computed on the host as transformers computes them (f32
 * inverse frequencies, f32 angle = position x frequency, then cos and sin), so the GPU never
 * evaluates sin/cos of large arguments. The decode step writes one row per token into a mapped buffer.
 */
import type { Rope } from '../models/spec.js';

const f = Math.fround;

/** Inverse frequencies [d/2] for a rope spec (default, linear or llama3 scaling). */
export function inverseFrequencies(rope: Rope, headDim: number): Float32Array {
  const n = headDim / 2;
  const inv = new Float32Array(n);
  for (let i = 0; i < n; i++) inv[i] = f(1 / f(rope.theta ** f(f(2 * i) / headDim)));
  const s = rope.scaling;
  if (s.kind === 'linear') for (let i = 0; i < n; i++) inv[i] = f(inv[i]! / s.factor);
  if (s.kind === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < n; i++) {
      const base = inv[i]!;
      const wavelen = (2 * Math.PI) / base;
      if (wavelen > lowWavelen) inv[i] = f(base / s.factor);
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = f((1 - smooth) * (base / s.factor) + smooth * base);
      }
    }
  }
  return inv;
}

/** (cos, sin) pairs [positions.length, d/2], interleaved, for the rope shader. */
export function ropeTable(
  inv: Float32Array,
  positions: ArrayLike<number>,
  out: Float32Array<ArrayBufferLike> = new Float32Array(positions.length * inv.length * 2),
): Float32Array<ArrayBufferLike> {
  const n = inv.length;
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t]!;
    for (let i = 0; i < n; i++) {
      const a = f(p * inv[i]!);
      out[(t * n + i) * 2] = Math.cos(a);
      out[(t * n + i) * 2 + 1] = Math.sin(a);
    }
  }
  return out;
}
