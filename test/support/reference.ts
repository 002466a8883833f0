/** The transformers reference outputs of test/fixtures/reference (made by scripts/fixtures/make_fixtures.py). */
import * as path from 'node:path';
import { decodeFloats } from '../../src/engine/formats/dtypes.js';
import { SafetensorsFile } from '../../src/engine/formats/safetensors.js';
import { FIXTURES } from './paths.js';

export interface Reference {
  readonly inputIds: number[];
  readonly embeddings: Float32Array;
  readonly layers: Float32Array[];
  readonly finalNorm: Float32Array;
  readonly logits: Float32Array;
  readonly greedy: number[];
  readonly minTop1Margin: number;
}

export function loadReference(name: string): Reference {
  const f = SafetensorsFile.open(path.join(FIXTURES, 'reference', `${name}.safetensors`));
  try {
    const ints = (n: string) => {
      const b = f.readAll(n);
      return Array.from(new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4));
    };
    const floats = (n: string) => decodeFloats(f.tensor(n).dtype, f.readAll(n));
    const layers: Float32Array[] = [];
    for (let i = 0; f.tensors.some((t) => t.name === `hidden.layer.${i}`); i++) layers.push(floats(`hidden.layer.${i}`));
    return {
      inputIds: ints('input_ids'),
      embeddings: floats('hidden.embeddings'),
      layers,
      finalNorm: floats('hidden.final_norm'),
      logits: floats('logits'),
      greedy: ints('greedy'),
      minTop1Margin: Number(f.metadata['min_top1_margin'] ?? 0),
    };
  } finally {
    f.close();
  }
}

/** Largest |a - b| and largest |b|. */
export function maxDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { diff, scale };
}

/** Argmax of each row of [rows, n]. */
export function rowArgmax(x: Float32Array, n: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / n; r++) {
    let best = 0;
    for (let i = 1; i < n; i++) if (x[r * n + i]! > x[r * n + best]!) best = i;
    out.push(best);
  }
  return out;
}
