/** Parsers for command-line option values (commander calls them; a bad value is a usage error), and the options several commands share. */
import { InvalidArgumentError, Option } from 'commander';
import { KV_CACHE_TYPES } from '../engine/models/memory.js';

export function number(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
}

/** A whole number >= 0. */
export function count(v: string): number {
  const n = number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number >= 0');
  return n;
}

/** A whole number >= 1. */
export function positive(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number >= 1');
  return n;
}

/** Repeatable options collect their values. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/**
 * `--kv-cache <f16|q8>`: how the KV cache stores keys and values (engine/models/memory.ts), for
 * every command that opens a model for generation (run, chat, serve, bench, load) and those that
 * plan for one (doctor --model, inspect --plan). One definition, so the help and the refusal of a
 * bad value (commander's choices: "argument 'x' is invalid. Allowed choices are f16, q8.", as
 * --device and --scheme) read the same everywhere. No commander default: left out, it is undefined
 * (f16 where a cache is made), as --ctx is, so a command can tell "asked" from "default".
 */
export function kvCacheOption(what = 'how the KV cache stores keys and values'): Option {
  return new Option(
    '--kv-cache <type>',
    `${what}: f16 (default), or q8 (int8 in blocks of 32 with an f32 scale: 0.56x the memory, some accuracy lost)`,
  ).choices(KV_CACHE_TYPES);
}
