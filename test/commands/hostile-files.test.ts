/**
 * Every path a command takes, pointed where a careless user or an attacker would point it: nothing
 * there, a symbolic link loop, a plain file, a FIFO, /proc/self and a file under it, a directory
 * this user may not read, the source's parent as the output, a full disk. Each command must end
 * by itself (no hang: every run has a deadline) with exit code 1, one `unicorn: ...` line and
 * nothing on stdout; never "internal error", and nothing deleted or left behind.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { BIN, FIXTURES, modelFixture, scratchDir } from '../support/paths.js';

const env = { ...process.env, UNICORN_VALIDATION: '0' };
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

interface Outcome {
  code: number | null;
  signal: string | null;
  out: string;
  err: string;
  ms: number;
}

/** Runs the CLI with a deadline (SIGKILL: a process spinning in a loop ignores SIGTERM). */
function unicorn(args: readonly string[], o: { input?: string; uid?: number; timeoutMs?: number } = {}): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      {
        encoding: 'utf8',
        env,
        timeout: o.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 1 << 22,
        ...(o.uid === undefined ? {} : { uid: o.uid, gid: o.uid }),
      },
      (error, out, err) => {
        const e = error as (Error & { code?: number | string; signal?: string }) | null;
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: e?.signal ?? null, out, err, ms: Date.now() - t0 });
      },
    );
    child.stdin?.end(o.input ?? '');
  });
}

/** Runs the cases three at a time (CI has two cores; each run waits on start-up I/O a while). */
async function all<T, R>(items: readonly T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Every entry under `dir` (type, size, contents of small files), to show nothing changed. */
function tree(dir: string): string[] {
  const rows: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath, e.name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    const body = st.isFile() && st.size < 1 << 20 ? fs.readFileSync(p).toString('base64') : '';
    rows.push(`${path.relative(dir, p)} ${st.mode.toString(8)} ${st.size} ${body}`);
  }
  return rows.sort();
}

function assertClean(r: Outcome, what: string): void {
  assert.equal(r.signal, null, `${what}: killed after ${r.ms} ms (it hung)`);
  assert.equal(r.code, 1, `${what}: exit ${r.code}\n${r.err}`);
  assert.match(r.err, /^unicorn: \S.*$/m, `${what}: one clear line`);
  assert.doesNotMatch(r.err, /internal error|    at .*:\d+:\d+/, what);
  assert.equal(r.out, '', `${what}: nothing on stdout`);
}

describe('hostile paths for every command', () => {
  test('nothing there, a link loop, a plain file, a FIFO, /proc, an unreadable directory: one clear line each, nothing changed', async () => {
    const dir = scratchDir('hostile');
    fs.chmodSync(dir, 0o755); // the unprivileged user's cases look inside
    fs.symlinkSync(path.join(dir, 'loop-b'), path.join(dir, 'loop'));
    fs.symlinkSync(path.join(dir, 'loop'), path.join(dir, 'loop-b'));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'a plain file\n');
    assert.equal(spawnSync('mkfifo', [path.join(dir, 'fifo')]).status, 0);
    fs.mkdirSync(path.join(dir, 'locked'));
    fs.writeFileSync(path.join(dir, 'locked', 'config.json'), '{}');
    fs.chmodSync(path.join(dir, 'locked'), 0o000);
    // A character device of our own (/dev/zero's numbers): an output pointed at it must be refused,
    // and were it not, only this copy would be replaced, never the system's /dev/zero. Without the
    // right to make one, /dev/zero itself serves where it is only read.
    const zero = path.join(dir, 'zero');
    const ownDevice = isRoot && spawnSync('mknod', ['-m', '666', zero, 'c', '1', '5']).status === 0;
    const snapshot = path.join(FIXTURES, 'doctor', 'debian-lavapipe.json');
    const llama = modelFixture('llama');
    const targets: Record<string, string> = {
      missing: path.join(dir, 'missing'),
      loop: path.join(dir, 'loop'),
      file: path.join(dir, 'notes.txt'),
      fifo: path.join(dir, 'fifo'),
      'proc dir': '/proc/self',
      'proc file': '/proc/self/status',
      device: ownDevice ? zero : '/dev/zero',
    };
    // Each command with the path in each position it takes.
    const positions: [string, (p: string) => string[], string?][] = [
      ['inspect', (p) => ['inspect', p]],
      ['run', (p) => ['run', p, 'hi', '-n', '2']],
      ['chat', (p) => ['chat', p], 'hi\n'],
      ['quantize source', (p) => ['quantize', p, path.join(dir, 'out'), '--no-eval']],
      ['quantize output', (p) => ['quantize', llama, p, '--no-eval', '--force']],
      ['quantize output/child', (p) => ['quantize', llama, path.join(p, 'q8'), '--no-eval']],
      ['load', (p) => ['load', p]],
      ['bench', (p) => ['bench', p]],
      ['doctor --from', (p) => ['doctor', '--from', p]],
      ['doctor --snapshot', (p) => ['doctor', '--from', snapshot, '--snapshot', p]],
      ['doctor --model', (p) => ['doctor', '--from', snapshot, '--model', p]],
    ];
    const cases: { what: string; args: string[]; input?: string; uid?: number }[] = [];
    // Where a path is legitimately an output, a missing path (it is made) and a plain file (a
    // snapshot replaces it, as any output file) are no attack: those pairs are left out.
    const writes = (command: string) => command.startsWith('quantize output') || command === 'doctor --snapshot';
    for (const [name, target] of Object.entries(targets)) {
      for (const [command, args, input] of positions) {
        if (name === 'missing' && writes(command)) continue;
        if (name === 'file' && command === 'doctor --snapshot') continue;
        // A device: where a command reads a file, or (only our own device node) writes one.
        if (name === 'device' && !['inspect', 'quantize source', 'doctor --from', ...(ownDevice ? ['doctor --snapshot'] : [])].includes(command)) continue;
        cases.push({ what: `${command} -> ${name}`, args: args(target), ...(input === undefined ? {} : { input }) });
      }
    }
    // The source's parent (and the source itself) as the output, with --force.
    const parent = path.join(dir, 'models');
    const src = path.join(parent, 'llama');
    fs.mkdirSync(src, { recursive: true });
    for (const f of fs.readdirSync(llama)) fs.copyFileSync(path.join(llama, f), path.join(src, f));
    cases.push({ what: "quantize into the source's parent", args: ['quantize', src, parent, '--force', '--no-eval'] });
    cases.push({ what: 'quantize into the source', args: ['quantize', src, src, '--force', '--no-eval'] });
    cases.push({ what: 'quantize into a folder of the source', args: ['quantize', src, path.join(src, 'q'), '--no-eval'] });
    // A directory this user may not read: as root, DAC does not apply, so those cases run as nobody.
    const locked = path.join(dir, 'locked');
    const uid = isRoot ? NOBODY : undefined;
    for (const [command, args, input] of positions) {
      if (command === 'doctor --from') continue; // a directory either way: covered above
      cases.push({
        what: `${command} -> unreadable directory`,
        args: args(writes(command) ? path.join(locked, 'x') : locked),
        ...(input === undefined ? {} : { input }),
        ...(uid === undefined ? {} : { uid }),
      });
    }
    const before = tree(dir);
    const results = await all(cases, (c) => unicorn(c.args, c));
    fs.chmodSync(locked, 0o755);
    const failures: string[] = [];
    results.forEach((r, i) => {
      try {
        assertClean(r, cases[i]!.what);
      } catch (e) {
        failures.push((e as Error).message);
      }
    });
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases`);
    fs.chmodSync(locked, 0o000);
    assert.deepEqual(tree(dir), before, 'nothing was created, changed or deleted');
    fs.chmodSync(locked, 0o755);
  });

  test('a full disk (a 64 KB tmpfs): quantize, doctor --snapshot and chat /save fail cleanly and leave nothing', async (t) => {
    const dir = scratchDir('hostile-disk');
    const mnt = path.join(dir, 'full');
    fs.mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(`mount -t tmpfs is not permitted here (${(m.stderr || m.error?.message || '').trim()}): the full-disk cases need root`);
      return;
    }
    try {
      // Fill it: every further write gets ENOSPC.
      const fd = fs.openSync(path.join(mnt, 'filler'), 'w');
      try {
        const chunk = Buffer.alloc(4096, 1);
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        fs.closeSync(fd);
      }
      const before = tree(mnt);
      const q = await unicorn(['quantize', modelFixture('llama'), path.join(mnt, 'q8'), '--no-eval', '--scheme', 'int8', '--workers', '1']);
      assertClean(q, 'quantize onto a full disk');
      assert.match(q.err, /disk (is )?full/);
      const d = await unicorn(['doctor', '--from', path.join(FIXTURES, 'doctor', 'debian-lavapipe.json'), '--snapshot', path.join(mnt, 'snap.json')]);
      assertClean(d, 'doctor --snapshot onto a full disk');
      assert.match(d.err, /disk full while writing/);
      const c = await unicorn(['chat', modelFixture('llama'), '-n', '2'], { input: `hi\n/save ${path.join(mnt, 'talk.json')}\n`, timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.err);
      assert.match(c.err, /not saved: disk full while writing .*; the conversation is still here/);
      assert.deepEqual(tree(mnt), before, 'nothing left on the full disk');
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  test('a path argument with control characters is printed escaped', async () => {
    const r = await unicorn(['inspect', '/tmp/\u001b[2J\u001b]0;owned\u0007']);
    assertClean(r, 'inspect <escape sequences>');
    assert.match(r.err, /\\x1b\[2J\\x1b\]0;owned\\x07/);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(r.err, /\u001b|\u0007/);
  });
});
