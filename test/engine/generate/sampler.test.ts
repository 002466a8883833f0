import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FALLBACK, GREEDY, Rng, Sampler, type SamplingOptions, checkSampling, outputFor, resolveSampling } from '../../../src/engine/generate/sampler.js';

const opts = (o: Partial<SamplingOptions>): SamplingOptions => ({ ...GREEDY, temperature: 1, seed: 7, ...o });
const logits = (v: number[]) => ({ logits: Float32Array.from(v) });

/** Empirical distribution of `n` draws. */
function draws(s: Sampler, l: number[], n: number, history: number[] = []): number[] {
  const counts = new Array<number>(l.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.sample(logits(l), history)]!++;
  return counts.map((c) => c / n);
}

test('greedy takes the argmax (the lowest id on ties), from whichever result the backend gave', () => {
  const s = new Sampler(GREEDY);
  assert.equal(s.sample(logits([1, 3, 3, 2]), []), 1);
  assert.equal(s.sample({ argmax: 42 }, []), 42);
  assert.equal(s.sample({ topk: { indices: [9, 4], values: [2, 2] } }, []), 4);
});

test('same seed, same tokens; another seed, other tokens', () => {
  const l = [0, 0.5, 1, 1.5, 2, 0.3, 0.7, 1.1];
  const run = (seed: number) => {
    const s = new Sampler(opts({ seed }));
    return Array.from({ length: 40 }, () => s.sample(logits(l), []));
  };
  assert.deepEqual(run(1), run(1));
  assert.notDeepEqual(run(1), run(2));
});

test('temperature 1 samples the softmax; top-k, top-p and min-p cut the tail', () => {
  const l = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
  const n = 20000;
  const p = draws(new Sampler(opts({})), l, n);
  [0.5, 0.3, 0.15, 0.05].forEach((want, i) => assert.ok(Math.abs(p[i]! - want) < 0.015, `softmax p[${i}] ${p[i]} vs ${want}`));
  const k2 = draws(new Sampler(opts({ topK: 2 })), l, n);
  assert.equal(k2[2]! + k2[3]!, 0);
  assert.ok(Math.abs(k2[0]! - 0.625) < 0.015);
  const p8 = draws(new Sampler(opts({ topP: 0.8 })), l, n); // 0.5 + 0.3 reaches 0.8
  assert.equal(p8[2]! + p8[3]!, 0);
  const m = draws(new Sampler(opts({ minP: 0.2 })), l, n); // keeps p >= 0.1: the first three
  assert.equal(m[3], 0);
  assert.ok(m[2]! > 0.1);
  // Temperature 0.5 sharpens: p ~ q^2 normalised.
  const t = draws(new Sampler(opts({ temperature: 0.5 })), l, n);
  assert.ok(Math.abs(t[0]! - 0.25 / (0.25 + 0.09 + 0.0225 + 0.0025)) < 0.015);
});

test('repetition penalty divides positive and multiplies negative logits of recent tokens', () => {
  const s = new Sampler(opts({ temperature: 0, repetitionPenalty: 2, repeatLastN: 2 }));
  assert.equal(s.sample(logits([3, 2.5, -1]), [0]), 1, '3 / 2 = 1.5 < 2.5');
  assert.equal(s.sample(logits([3, 2.5, -1]), [0, 5, 7]), 0, 'token 0 is outside the last 2');
  assert.equal(s.sample(logits([-1, -1.5, -3]), [0]), 1, '-1 x 2 = -2 < -1.5');
});

test('presence and frequency penalties subtract, per token seen in the window, presence once and frequency per occurrence', () => {
  const s = new Sampler(opts({ temperature: 0, presencePenalty: 0.5, frequencyPenalty: 0.4, repeatLastN: 4 }));
  // Token 0 seen twice: 3 - 0.5 - 0.8 = 1.7 < 2; seen once: 3 - 0.9 = 2.1 > 2.
  assert.equal(s.sample(logits([3, 2, 0]), [0, 0]), 1);
  assert.equal(s.sample(logits([3, 2, 0]), [0]), 0);
  assert.equal(s.sample(logits([3, 2, 0]), [0, 0, 1, 1, 1]), 0, 'only the last 4 count: 0 once (2.1), 1 three times (0.3)');
  const neg = new Sampler(opts({ temperature: 0, presencePenalty: -2 }));
  assert.equal(neg.sample(logits([3, 2, 0]), [1]), 1, 'a negative presence penalty favours seen tokens');
  assert.deepEqual(outputFor(opts({ topK: 40, frequencyPenalty: 0.1 }), 1024, 1000), { kind: 'logits' });
  assert.deepEqual(checkSampling({ ...GREEDY, presencePenalty: 3, frequencyPenalty: -2.5 }).length, 2);
});

test("resolved sampling: asked, then the model's defaults, then llama.cpp's; a random seed unless given", () => {
  const r = resolveSampling({ temperature: 0.2 }, { temperature: 0.9, topK: 64 });
  assert.equal(r.temperature, 0.2);
  assert.equal(r.topK, 64);
  assert.equal(r.topP, FALLBACK.topP);
  assert.ok(Number.isInteger(r.seed));
  assert.equal(resolveSampling({ seed: 5 }, {}).seed, 5);
  assert.throws(() => resolveSampling({ topP: 0 }, {}), RangeError);
});

test('what the GPU must return: argmax for greedy, top-k when it bounds the candidates, else all logits', () => {
  assert.deepEqual(outputFor(GREEDY, 1024, 1000), { kind: 'argmax' });
  assert.deepEqual(outputFor(opts({ topK: 40 }), 1024, 1000), { kind: 'topk', k: 40 });
  assert.deepEqual(outputFor(opts({ topK: 0 }), 1024, 1000), { kind: 'logits' });
  assert.deepEqual(outputFor(opts({ topK: 2000 }), 1024, 5000), { kind: 'logits' });
  assert.deepEqual(outputFor(opts({ topK: 40, repetitionPenalty: 1.1 }), 1024, 1000), { kind: 'logits' }, 'a penalty can pull a token out of the top k');
});

test('top-k on the GPU gives the same draws as the full logits', () => {
  const l = Array.from({ length: 300 }, (_, i) => Math.sin(i * 1.7) * 3);
  const order = l
    .map((_, i) => i)
    .sort((a, b) => l[b]! - l[a]! || a - b)
    .slice(0, 20);
  const a = new Sampler(opts({ topK: 20, topP: 0.9, seed: 3 }));
  const b = new Sampler(opts({ topK: 20, topP: 0.9, seed: 3 }));
  for (let i = 0; i < 200; i++) {
    assert.equal(a.sample(logits(l), []), b.sample({ topk: { indices: order, values: order.map((j) => l[j]!) } }, []));
  }
});

test('bad sampling values are refused with what is wrong', () => {
  assert.deepEqual(checkSampling(GREEDY), []);
  const bad = checkSampling({ temperature: -1, topK: 1.5, topP: 0, minP: 1, repetitionPenalty: 0, repeatLastN: -1, seed: -3 });
  assert.equal(bad.length, 7);
  assert.throws(() => new Sampler({ ...GREEDY, topP: 2 }), /top-p 2 must be in/);
});

test('the generator is uniform enough and deterministic', () => {
  const r = new Rng(123);
  const xs = Array.from({ length: 10000 }, () => r.next());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01);
  assert.equal(new Rng(5).next(), new Rng(5).next());
});
