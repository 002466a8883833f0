/** The sampling flags run and chat share: declared once, checked before anything loads, resolved against the model's defaults. */
import type { Command } from 'commander';
import { UnicornError } from '../engine/errors.js';
import { type SamplingOptions, resolveSampling as resolve } from '../engine/generate/sampler.js';
import { count, number } from './args.js';

export interface SamplingFlags {
  temp?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

/** Adds the sampling flags to a command. */
export function samplingOptions(c: Command): Command {
  return c
    .option('--temp <t>', 'temperature (0 = greedy)', number)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', count)
    .option('--top-p <p>', 'keep the smallest set with this much probability (1 = off)', number)
    .option('--min-p <p>', "drop tokens below p x the best one's probability (0 = off)", number)
    .option('--repeat-penalty <r>', 'penalise tokens seen in the last --repeat-last-n (1 = off)', number)
    .option('--repeat-last-n <n>', 'window for the repetition penalty', count)
    .option('--seed <s>', 'random seed (same seed, same text); default: random, printed', count);
}

/** Sampling from the flags, then the model's generation_config.json, then llama.cpp's defaults. */
export function resolveSampling(flags: SamplingFlags, d: Partial<SamplingOptions>): SamplingOptions {
  const asked: { -readonly [K in keyof SamplingOptions]?: SamplingOptions[K] } = {};
  if (flags.temp !== undefined) asked.temperature = flags.temp;
  if (flags.topK !== undefined) asked.topK = flags.topK;
  if (flags.topP !== undefined) asked.topP = flags.topP;
  if (flags.minP !== undefined) asked.minP = flags.minP;
  if (flags.repeatPenalty !== undefined) asked.repetitionPenalty = flags.repeatPenalty;
  if (flags.repeatLastN !== undefined) asked.repeatLastN = flags.repeatLastN;
  if (flags.seed !== undefined) asked.seed = flags.seed;
  try {
    return resolve(asked, d);
  } catch (e) {
    throw new UnicornError(`sampling: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Sampling flags checked on their own (the model's generation_config.json only fills in what was
 * not asked), and stop strings: both before the model loads, so a typo costs no loading time.
 */
export function checkRunFlags(flags: SamplingFlags & { stop?: string[] }): void {
  resolveSampling(flags, {});
  if (flags.stop?.some((s) => s === '') === true) {
    throw new UnicornError("--stop '': an empty stop string would stop at once", { hint: 'give the text to stop at, e.g. --stop "\\n\\n"' });
  }
}
