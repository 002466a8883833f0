/**
 * Snapshots read back (`unicorn doctor --from`): a file anyone may hand over, so every field the
 * checks read is checked first, and what is wrong is said in one line naming the field, what it
 * should be and what it is (`vulkan.devices[0].heaps: expected an array, got null`). The checks
 * (checks.ts) then run on a value of exactly the Snapshot type.
 */
import { UnicornError } from '../errors.js';
import { FileError, readRegularFile } from '../formats/files.js';
import { escapeControl } from '../text/escape.js';
import type { Snapshot } from './probe.js';

export class SnapshotError extends UnicornError {}

/** Snapshots are a few hundred KB; anything past this is not one. */
export const MAX_SNAPSHOT_BYTES = 64 << 20;

/** A JSON value described for a message: its type, and a short form of it. */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${escapeControl(JSON.stringify(v), 40)}`;
  return `the ${typeof v} ${escapeControl(String(v), 40)}`;
}

/** Walks a value, failing at the first field that does not have its type. */
class Shape {
  constructor(private readonly source: string) {}

  fail(at: string, expected: string, got: unknown): never {
    throw new SnapshotError(`${this.source}: not a unicorn doctor snapshot: ${at} should be ${expected}, but is ${describe(got)}`, {
      hint: 'give a file written by `unicorn doctor --snapshot <file>`, unchanged',
    });
  }

  object(v: unknown, at: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(at, 'an object', v);
    return v as Record<string, unknown>;
  }

  string(v: unknown, at: string): void {
    if (typeof v !== 'string') this.fail(at, 'a string', v);
  }

  number(v: unknown, at: string): void {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(at, 'a number', v);
  }

  boolean(v: unknown, at: string): void {
    if (typeof v !== 'boolean') this.fail(at, 'true or false', v);
  }

  nullable(v: unknown, at: string, check: (v: unknown, at: string) => void): void {
    if (v !== null) check(v, at);
  }

  array(v: unknown, at: string, each: (v: unknown, at: string) => void): void {
    if (!Array.isArray(v)) this.fail(at, 'an array', v);
    v.forEach((x, i) => each(x, `${at}[${i}]`));
  }

  /** An object used as a map from names to values of one kind. */
  record(v: unknown, at: string, each: (v: unknown, at: string) => void): void {
    const o = this.object(v, at);
    for (const [k, x] of Object.entries(o)) each(x, `${at}[${escapeControl(JSON.stringify(k), 60)}]`);
  }
}

const DEVICE_STRINGS = ['name', 'type', 'apiVersion', 'driverName', 'driverInfo'] as const;
const DEVICE_NUMBERS = ['index', 'vendorId', 'deviceId', 'subgroupSize', 'maxStorageBufferRange', 'maxMemoryAllocationSize'] as const;
const DEVICE_FLAGS = ['subgroupArithmetic', 'shaderFloat16', 'shaderInt8', 'storage8Bit', 'storage16Bit', 'cooperativeMatrix', 'integerDotProduct'] as const;

/** Checks that `v` has the shape of a schema 1 Snapshot (every field the checks read) and returns it as one. */
export function validateSnapshot(v: unknown, source: string): Snapshot {
  const s = new Shape(source);
  const top = s.object(v, 'the file');
  if (top['schema'] !== 1) {
    if (typeof top['schema'] === 'number') {
      throw new SnapshotError(`${source}: snapshot schema ${top['schema']}, this unicorn reads schema 1`, {
        hint: 'check it with the unicorn version that wrote it',
      });
    }
    s.fail('schema', 'the number 1', top['schema']);
  }
  for (const k of ['takenAt', 'platform', 'arch'] as const) s.string(top[k], k);
  const user = s.object(top['user'], 'user');
  s.number(user['uid'], 'user.uid');
  s.array(user['groups'], 'user.groups', (g, at) => s.string(g, at));
  s.record(top['files'], 'files', (f, at) => s.nullable(f, at, (x, a) => s.string(x, a)));
  s.record(top['dirs'], 'dirs', (d, at) => s.nullable(d, at, (x, a) => s.array(x, a, (e, b) => s.string(e, b))));
  s.record(top['commands'], 'commands', (c, at) =>
    s.nullable(c, at, (x, a) => {
      const o = s.object(x, a);
      s.number(o['code'], `${a}.code`);
      s.string(o['output'], `${a}.output`);
    }),
  );
  const vk = s.object(top['vulkan'], 'vulkan');
  s.boolean(vk['loader'], 'vulkan.loader');
  s.nullable(vk['error'], 'vulkan.error', (x, a) => s.string(x, a));
  s.nullable(vk['chosen'], 'vulkan.chosen', (x, a) => s.number(x, a));
  s.array(vk['devices'], 'vulkan.devices', (d, at) => {
    const o = s.object(d, at);
    for (const k of DEVICE_STRINGS) s.string(o[k], `${at}.${k}`);
    for (const k of DEVICE_NUMBERS) s.number(o[k], `${at}.${k}`);
    for (const k of DEVICE_FLAGS) s.boolean(o[k], `${at}.${k}`);
    s.array(o['heaps'], `${at}.heaps`, (h, ha) => {
      const heap = s.object(h, ha);
      s.number(heap['index'], `${ha}.index`);
      s.number(heap['size'], `${ha}.size`);
      s.boolean(heap['deviceLocal'], `${ha}.deviceLocal`);
      s.nullable(heap['budget'], `${ha}.budget`, (x, a) => s.number(x, a));
    });
  });
  s.nullable(vk['selfTest'], 'vulkan.selfTest', (x, a) => {
    const t = s.object(x, a);
    s.string(t['device'], `${a}.device`);
    s.boolean(t['ok'], `${a}.ok`);
    s.string(t['detail'], `${a}.detail`);
    s.nullable(t['matvecGbps'], `${a}.matvecGbps`, (y, b) => s.number(y, b));
    s.nullable(t['copyGbps'], `${a}.copyGbps`, (y, b) => s.number(y, b));
  });
  return v as Snapshot;
}

/** Reads and checks a snapshot file: one clear SnapshotError for anything that is not one. */
export function readSnapshot(file: string): Snapshot {
  let text: string;
  try {
    text = readRegularFile(file, MAX_SNAPSHOT_BYTES);
  } catch (e) {
    if (e instanceof FileError) throw new SnapshotError(e.message, { hint: 'give a file written by `unicorn doctor --snapshot <file>`' });
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SnapshotError(`${file}: not a snapshot: not valid JSON (${escapeControl(e instanceof Error ? e.message : String(e), 200)})`, {
      hint: 'give a file written by `unicorn doctor --snapshot <file>`',
    });
  }
  return validateSnapshot(v, file);
}
