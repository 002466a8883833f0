/**
 * CPU references of the GPU kernels, in f64 accumulation: what the kernel tests compare against,
 * and the `--device cpu` path's building blocks. Layouts are the kernels' own.
 */
import { f16ToF32, f32ToF16 } from '../formats/dtypes.js';

export function rmsnormRef(x: Float32Array, w: Float32Array, rows: number, n: number, eps: number, offset: number): Float32Array {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[r * n + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = x[r * n + i]! * inv * (offset + w[i]!);
  }
  return y;
}

/** Rotate-half RoPE over x [tokens, heads, d] with a (cos, sin) table [tokens, d/2]. */
export function ropeRef(x: Float32Array, table: Float32Array, tokens: number, heads: number, d: number): Float32Array {
  const y = x.slice();
  const h2 = d / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * d;
      for (let i = 0; i < h2; i++) {
        const c = table[(t * h2 + i) * 2]!;
        const s = table[(t * h2 + i) * 2 + 1]!;
        const a = x[base + i]!;
        const b = x[base + i + h2]!;
        y[base + i] = a * c - b * s;
        y[base + i + h2] = b * c + a * s;
      }
    }
  }
  return y;
}

export function geluTanh(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

export function gatedRef(kind: 'gelu_tanh' | 'silu', g: Float32Array, u: Float32Array): Float32Array {
  const act = kind === 'gelu_tanh' ? geluTanh : silu;
  return Float32Array.from(g, (v, i) => act(v) * u[i]!);
}

/**
 * Attention over an f16 cache as the kernel sees it: q [tokens, heads, d], k/v [kvHeads, capacity, d]
 * (already f16-rounded values), positions [tokens]; window 0 = none, softcap 0 = none.
 */
export function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  positions: ArrayLike<number>,
  o: { heads: number; kvHeads: number; d: number; capacity: number; window: number; scale: number; softcap: number },
): Float32Array {
  const tokens = positions.length;
  const out = new Float32Array(tokens * o.heads * o.d);
  const group = o.heads / o.kvHeads;
  for (let t = 0; t < tokens; t++) {
    const me = positions[t]!;
    const first = o.window === 0 ? 0 : Math.max(0, me + 1 - o.window);
    for (let h = 0; h < o.heads; h++) {
      const kvh = Math.floor(h / group);
      const scores: number[] = [];
      for (let j = first; j <= me; j++) {
        const slot = j % o.capacity;
        let s = 0;
        for (let i = 0; i < o.d; i++) s += q[(t * o.heads + h) * o.d + i]! * o.scale * k[(kvh * o.capacity + slot) * o.d + i]!;
        if (o.softcap > 0) s = o.softcap * Math.tanh(s / o.softcap);
        scores.push(s);
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const l = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < o.d; i++) {
        let acc = 0;
        for (let j = first; j <= me; j++) acc += e[j - first]! * v[(kvh * o.capacity + (j % o.capacity)) * o.d + i]!;
        out[(t * o.heads + h) * o.d + i] = acc / l;
      }
    }
  }
  return out;
}

/** Values as an f16 cache holds them. */
export function roundF16(x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => f16ToF32(f32ToF16(v)));
}

/** Deterministic values in [-2, 2] for the once-per-device kernel checks (seeded, no generator state). */
export function checkValues(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 2);
}

/** f32 values as the bytes of an f16 buffer (what the KV cache holds). */
export function f16Bytes(x: Float32Array): Uint8Array {
  return new Uint8Array(Uint16Array.from(x, (v) => f32ToF16(v)).buffer);
}

/** Index of the largest value, the first on ties (torch.argmax). */
export function argmaxRef(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** The k largest values (first indices on ties), largest first. */
export function topkRef(x: ArrayLike<number>, k: number): { indices: number[]; values: number[] } {
  const order = Array.from({ length: x.length }, (_, i) => i)
    .sort((a, b) => x[b]! - x[a]! || a - b)
    .slice(0, k);
  return { indices: order, values: order.map((i) => x[i]!) };
}

/**
 * A q8 KV cache's encoding of rows (docs/formats.md "KV cache"): each block of 32 values (the blocks
 * of a head's row; x.length a multiple of 32) as int8 q = round(x * 127 / amax) with one f32 scale
 * amax / 127 (0 for a block of zeros), as rope_store.comp writes them.
 */
export function q8Encode(x: Float32Array): { values: Int8Array; scales: Float32Array } {
  if (x.length % 32 !== 0) throw new RangeError(`q8: ${x.length} values are not whole blocks of 32`);
  const values = new Int8Array(x.length);
  const scales = new Float32Array(x.length / 32);
  for (let b = 0; b < scales.length; b++) {
    let amax = 0;
    for (let i = b * 32; i < b * 32 + 32; i++) amax = Math.max(amax, Math.abs(x[i]!));
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    scales[b] = Math.fround(amax / 127);
    for (let i = b * 32; i < b * 32 + 32; i++) values[i] = Math.max(-127, Math.min(127, Math.floor(Math.fround(x[i]! * inv) + 0.5)));
  }
  return { values, scales };
}

/** Values as a q8 cache holds them (q times its block's scale). */
export function roundQ8(x: Float32Array): Float32Array {
  const { values, scales } = q8Encode(x);
  return Float32Array.from(values, (q, i) => Math.fround(q * scales[i >> 5]!));
}

/** Values as a cache of this type holds them. */
export function roundKv(x: Float32Array, type: 'f16' | 'q8'): Float32Array {
  return type === 'q8' ? roundQ8(x) : roundF16(x);
}
