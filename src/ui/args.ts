/** Parsers for command-line option values (commander calls them; a bad value is a usage error). */
import { InvalidArgumentError } from 'commander';

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
