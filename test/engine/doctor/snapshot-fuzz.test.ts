/**
 * doctor --from on random JSON (fixed seed): a few hundred random values and mutations of the
 * recorded snapshots. Each one is either refused with a SnapshotError (a UnicornError: the CLI
 * prints it as one `unicorn: ...` line with exit code 1) naming a field, or checked and printed
 * with no raw control character; never another exception. A few go through the real command too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { renderChecks } from '../../../src/commands/doctor.js';
import { runChecks } from '../../../src/engine/doctor/checks.js';
import { SnapshotError, validateSnapshot } from '../../../src/engine/doctor/snapshot.js';
import { BIN, FIXTURES, scratchDir } from '../../support/paths.js';

/** A small seeded generator (the same cases on every run). */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return a % n;
  };
}

const NASTY = [
  '',
  'x',
  '\u001b[2J',
  '\u001b]0;title\u0007',
  '\u009b31m',
  'line\nforged',
  '\u0000',
  'é漢😀',
  '__proto__',
  'constructor',
  '1',
  'null',
  ' '.repeat(50),
];

function randomValue(r: (n: number) => number, depth = 0): unknown {
  switch (r(depth > 3 ? 6 : 9)) {
    case 0:
      return null;
    case 1:
      return r(2) === 0;
    case 2:
      return [0, -1, 1, 1e308, -1e-308, 2 ** 53, 0.5, 7][r(8)];
    case 3:
      return NASTY[r(NASTY.length)];
    case 4:
      return r(1000) - 500;
    case 5:
      return `${NASTY[r(NASTY.length)]}${r(100)}`;
    case 6:
      return Array.from({ length: r(4) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r(5); i > 0; i--) o[[...NASTY, 'schema', 'vulkan', 'devices', 'files', 'heaps'][r(NASTY.length + 5)]!] = randomValue(r, depth + 1);
      return o;
    }
  }
}

/** The recorded snapshot with one value somewhere replaced, removed, or wrapped. */
function mutate(base: unknown, r: (n: number) => number): unknown {
  const copy = JSON.parse(JSON.stringify(base)) as unknown;
  // Walk down a random path, then change what is there.
  let parent: Record<string, unknown> | unknown[] | null = null;
  let key: string | number = '';
  let node = copy;
  for (let steps = r(6) + 1; steps > 0 && node !== null && typeof node === 'object'; steps--) {
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) break;
    parent = node as Record<string, unknown> | unknown[];
    key = keys[r(keys.length)]!;
    node = (parent as Record<string | number, unknown>)[key];
  }
  if (parent === null) return randomValue(r);
  const p = parent as Record<string | number, unknown>;
  switch (r(4)) {
    case 0:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete p[key];
      break;
    case 1:
      p[key] = [node];
      break;
    case 2:
      p[key] = typeof node === 'string' ? `${node}${NASTY[r(NASTY.length)]}` : randomValue(r);
      break;
    default:
      p[key] = randomValue(r);
  }
  return copy;
}

test('a few hundred random snapshots: a SnapshotError naming a field, or checks printed without raw control characters', () => {
  const bases = ['debian-lavapipe.json', 'h100-nvidia.json'].map((f) => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'doctor', f), 'utf8')) as unknown);
  const r = rng(20240601);
  const t0 = performance.now();
  let refused = 0;
  let checked = 0;
  for (let i = 0; i < 400; i++) {
    const value = i % 4 === 0 ? randomValue(r) : mutate(bases[i % 2]!, r);
    // Through JSON text, as the command reads it.
    const parsed = JSON.parse(JSON.stringify(value) ?? 'null') as unknown;
    let snap;
    try {
      snap = validateSnapshot(parsed, 'fuzz.json');
    } catch (e) {
      assert.ok(e instanceof SnapshotError, `case ${i}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      assert.match(
        e.message,
        /^fuzz\.json: (not a unicorn doctor snapshot: .+ should be .+, but is .+|snapshot schema \S+, this unicorn reads schema 1)$/,
        `case ${i}`,
      );
      assert.ok(!e.message.includes('\n'), `case ${i}: one line`);
      refused++;
      continue;
    }
    const text = renderChecks(runChecks(snap));
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `case ${i}: raw control characters`);
    checked++;
  }
  assert.ok(refused > 50 && checked > 50, `both outcomes exercised (${refused} refused, ${checked} checked)`);
  assert.ok(performance.now() - t0 < 20_000, 'bounded in time');
});

test('the real command on a handful of them: exit 0 or 1, one unicorn: line, never an internal error or a hang', () => {
  const base = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'doctor', 'debian-lavapipe.json'), 'utf8')) as unknown;
  const r = rng(7);
  const dir = scratchDir('doctor-fuzz');
  const file = path.join(dir, 'snap.json');
  for (let i = 0; i < 8; i++) {
    fs.writeFileSync(file, JSON.stringify(i % 2 === 0 ? randomValue(r) : mutate(base, r)) ?? 'null');
    const p = spawnSync(process.execPath, [BIN, 'doctor', '--from', file], {
      encoding: 'utf8',
      timeout: 30_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, UNICORN_VALIDATION: '0' },
    });
    assert.equal(p.signal, null, `case ${i}: hung`);
    assert.ok(p.status === 0 || p.status === 1, `case ${i}: exit ${p.status}\n${p.stderr}`);
    if (p.status === 1 && p.stdout === '') assert.match(p.stderr, /^unicorn: /m);
    assert.doesNotMatch(p.stderr, /internal error/, `case ${i}`);
  }
  assert.deepEqual(fs.readdirSync(dir), ['snap.json']);
});
