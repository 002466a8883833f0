/**
 * Token sampling, in the order transformers applies its logits processors: repetition penalty,
 * temperature, top-k, top-p, min-p, then a draw from a seeded generator (same seed and same logits,
 * same token). Temperature 0 is greedy. The GPU hands over only what is needed: the argmax when
 * greedy, the top k when top-k bounds the candidates (and no penalty can reorder them), the full
 * logits otherwise.
 */
import { randomInt } from 'node:crypto';
import type { Output, StepResult } from '../models/backend.js';

export interface SamplingOptions {
  /** 0 = greedy. */
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** 1 = off. */
  readonly topP: number;
  /** 0 = off. */
  readonly minP: number;
  /** 1 = off; > 1 discourages tokens already in the context (the last repeatLastN of them). */
  readonly repetitionPenalty: number;
  readonly repeatLastN: number;
  /** OpenAI's additive penalties over the same window: logit -= presence x [seen] + frequency x count. 0 = off. */
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
  readonly seed: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 0 };

/** Checks ranges; returns a message per bad value. */
export function checkSampling(o: SamplingOptions): string[] {
  const bad: string[] = [];
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) bad.push(`temperature ${o.temperature} must be 0 or more`);
  if (!Number.isInteger(o.topK) || o.topK < 0) bad.push(`top-k ${o.topK} must be a whole number, 0 or more`);
  if (!(o.topP > 0 && o.topP <= 1)) bad.push(`top-p ${o.topP} must be in (0, 1]`);
  if (!(o.minP >= 0 && o.minP < 1)) bad.push(`min-p ${o.minP} must be in [0, 1)`);
  if (!(o.repetitionPenalty > 0) || !Number.isFinite(o.repetitionPenalty)) bad.push(`repetition penalty ${o.repetitionPenalty} must be above 0`);
  if (!Number.isInteger(o.repeatLastN) || o.repeatLastN < 0) bad.push(`repeat-last-n ${o.repeatLastN} must be a whole number, 0 or more`);
  for (const [name, v] of [
    ['presence penalty', o.presencePenalty],
    ['frequency penalty', o.frequencyPenalty],
  ] as const) {
    if (v !== undefined && !(v >= -2 && v <= 2)) bad.push(`${name} ${v} must be in [-2, 2]`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) bad.push(`seed ${o.seed} must be a whole number from 0 to 4294967295`);
  return bad;
}

/** What the backend must return for this sampler (maxTopK: the most the GPU's top-k gives). */
export function outputFor(o: SamplingOptions, maxTopK: number, vocab: number): Output {
  if (penalised(o)) return { kind: 'logits' };
  if (o.temperature === 0) return { kind: 'argmax' };
  if (o.topK > 0 && o.topK <= maxTopK) return { kind: 'topk', k: Math.min(o.topK, vocab) };
  return { kind: 'logits' };
}

/** Whether a penalty can reorder the logits (then the sampler needs all of them). */
function penalised(o: SamplingOptions): boolean {
  return o.repetitionPenalty !== 1 || (o.presencePenalty ?? 0) !== 0 || (o.frequencyPenalty ?? 0) !== 0;
}

/** llama.cpp's defaults, used where neither the request nor the model's generation_config.json says. */
export const FALLBACK: Omit<SamplingOptions, 'seed'> = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1, repeatLastN: 64 };

/**
 * Sampling from what was asked, then the model's generation_config.json, then llama.cpp's
 * defaults; a random seed when none is given. Throws a RangeError naming every bad value.
 */
export function resolveSampling(asked: Partial<SamplingOptions>, modelDefaults: Partial<SamplingOptions>): SamplingOptions {
  const pick = <K extends keyof typeof FALLBACK>(k: K) => asked[k] ?? modelDefaults[k] ?? FALLBACK[k];
  const sampling: SamplingOptions = {
    temperature: pick('temperature'),
    topK: pick('topK'),
    topP: pick('topP'),
    minP: pick('minP'),
    repetitionPenalty: pick('repetitionPenalty'),
    repeatLastN: asked.repeatLastN ?? FALLBACK.repeatLastN,
    ...(asked.presencePenalty === undefined ? {} : { presencePenalty: asked.presencePenalty }),
    ...(asked.frequencyPenalty === undefined ? {} : { frequencyPenalty: asked.frequencyPenalty }),
    seed: asked.seed ?? randomInt(0, 2 ** 32 - 1),
  };
  const bad = checkSampling(sampling);
  if (bad.length > 0) throw new RangeError(bad.join('; '));
  return sampling;
}

/** A small, fast, seedable generator (mulberry32): floats in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export class Sampler {
  private readonly rng: Rng;

  constructor(readonly options: SamplingOptions) {
    const bad = checkSampling(options);
    if (bad.length > 0) throw new RangeError(bad.join('; '));
    this.rng = new Rng(options.seed);
  }

  /** Chooses the next token from a step's result; `history` is the context so far (for the penalty). */
  sample(r: StepResult, history: readonly number[]): number {
    const o = this.options;
    if (r.argmax !== undefined) return r.argmax;
    let ids: number[];
    let logits: number[];
    if (r.topk !== undefined) {
      ids = r.topk.indices.slice();
      logits = r.topk.values.slice();
    } else if (r.logits !== undefined) {
      const l = r.logits;
      if (penalised(o)) {
        const counts = new Map<number, number>();
        for (const id of history.slice(Math.max(0, history.length - o.repeatLastN))) counts.set(id, (counts.get(id) ?? 0) + 1);
        const presence = o.presencePenalty ?? 0;
        const frequency = o.frequencyPenalty ?? 0;
        for (const [id, n] of counts) {
          let v = l[id]!;
          if (o.repetitionPenalty !== 1) v = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
          l[id] = v - presence - frequency * n;
        }
      }
      ids = Array.from({ length: l.length }, (_, i) => i);
      logits = Array.from(l);
    } else {
      throw new Error('sampler: the step returned no logits');
    }
    if (o.temperature === 0) {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]! || (logits[i] === logits[best] && ids[i]! < ids[best]!)) best = i;
      return ids[best]!;
    }
    // Sort candidates by logit, largest first (ties: lower id first), then cut.
    let order = logits.map((_, i) => i).sort((a, b) => logits[b]! - logits[a]! || ids[a]! - ids[b]!);
    if (o.topK > 0) order = order.slice(0, o.topK);
    const max = logits[order[0]!]!;
    let probs = order.map((i) => Math.exp((logits[i]! - max) / o.temperature));
    let sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
    let keep = probs.length;
    if (o.topP < 1) {
      // Smallest prefix whose mass reaches top-p (at least one token).
      let acc = 0;
      for (let i = 0; i < probs.length; i++) {
        acc += probs[i]!;
        if (acc >= o.topP) {
          keep = i + 1;
          break;
        }
      }
    }
    if (o.minP > 0) {
      const floor = o.minP * probs[0]!;
      let n = 0;
      while (n < keep && probs[n]! >= floor) n++;
      keep = Math.max(1, n);
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    let u = this.rng.next() * sum;
    for (let i = 0; i < keep; i++) {
      u -= probs[i]!;
      if (u < 0) return ids[order[i]!]!;
    }
    return ids[order[keep - 1]!]!;
  }
}
