/**
 * The quality report of a quantized model: the same prompts through the original and the quantized
 * model on the GPU, compared position by position: mean KL divergence of the next-token distributions
 * (original || quantized) and how often the most likely token is the same.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openRunner } from '../generate/runner.js';
import { readModelSpec } from '../models/model-dir.js';
import { TextCodec } from '../text/tokenizer.js';

export interface Comparison {
  readonly meanKl: number;
  readonly maxKl: number;
  /** Share of positions whose argmax agrees. */
  readonly top1: number;
  readonly maxDiff: number;
  readonly positions: number;
}

/** Compares two [positions, vocab] logit arrays. */
export function compareLogits(want: Float32Array, got: Float32Array, vocab: number): Comparison {
  const T = want.length / vocab;
  let kl = 0;
  let maxKl = 0;
  let agree = 0;
  let maxDiff = 0;
  const lse = (x: Float32Array) => {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    return m + Math.log(s);
  };
  for (let t = 0; t < T; t++) {
    const a = want.subarray(t * vocab, (t + 1) * vocab);
    const b = got.subarray(t * vocab, (t + 1) * vocab);
    const la = lse(a);
    const lb = lse(b);
    let k = 0;
    let ia = 0;
    let ib = 0;
    for (let i = 0; i < vocab; i++) {
      const pa = a[i]! - la;
      k += Math.exp(pa) * (pa - (b[i]! - lb));
      if (a[i]! > a[ia]!) ia = i;
      if (b[i]! > b[ib]!) ib = i;
      maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    }
    kl += k;
    maxKl = Math.max(maxKl, k);
    if (ia === ib) agree++;
  }
  return { meanKl: kl / T, maxKl, top1: agree / T, maxDiff, positions: T };
}

/** The fixed prompts of the report (English; token ids drawn from a fixed seed when there is no tokenizer). */
export const QUALITY_PROMPTS = [
  'The history of the Roman Empire spans more than a thousand years, from the founding of the city to the fall of Constantinople.',
  'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n',
  'Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water.',
  'Q: What is the capital of France?\nA: The capital of France is Paris.\nQ: And of Italy?\nA:',
];

function promptIds(dir: string, vocab: number): number[][] {
  if (fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    const codec = TextCodec.load(dir);
    return QUALITY_PROMPTS.map((p) => codec.encode(p, true).slice(0, 64));
  }
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed;
  };
  return QUALITY_PROMPTS.map(() => Array.from({ length: 32 }, () => 3 + (rand() % (vocab - 3))));
}

/** All prompts' logits through one model, concatenated. */
function logitsOf(dir: string, prompts: number[][], gpu?: string): Float32Array {
  const runner = openRunner(dir, { ctx: 128, batch: 64, text: false, ...(gpu === undefined ? {} : { gpu }) });
  try {
    const vocab = runner.model.spec.vocabSize;
    const out = new Float32Array(prompts.reduce((a, p) => a + p.length, 0) * vocab);
    let at = 0;
    for (const p of prompts) {
      runner.session.reset();
      out.set(runner.backend.probe(p, 0).logits, at);
      at += p.length * vocab;
    }
    return out;
  } finally {
    runner.close();
  }
}

export function qualityReport(original: string, quantized: string, opts: { gpu?: string } = {}): Comparison {
  const vocab = readModelSpec(original).vocabSize;
  const prompts = promptIds(original, vocab).map((p) => p.filter((id) => id < vocab));
  const want = logitsOf(original, prompts, opts.gpu);
  const got = logitsOf(quantized, prompts, opts.gpu);
  return compareLogits(want, got, want.length / prompts.reduce((a, p) => a + p.length, 0));
}
