/**
 * One server per model: the lock (taken by exactly one of several processes at once, stale ones
 * taken over, removed only by its holder), and the runtime files' "remove only what you made".
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ServerLock, acquireLock, lockHolder, processAlive, readLock } from '../../../src/engine/server/lock.js';
import { createExclusive, identity, unlinkIfSame } from '../../../src/engine/server/runtime.js';
import { scratchDir } from '../../support/paths.js';

const dir = scratchDir('lock');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const LOCK_JS = fileURLToPath(new URL('../../../src/engine/server/lock.js', import.meta.url));

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a lock is taken once: the second try names the live holder; release frees it', () => {
  const file = path.join(dir, 'a.lock');
  const lock = acquireLock(file);
  assert.ok(lock instanceof ServerLock);
  const again = acquireLock(file);
  assert.ok(!(again instanceof ServerLock));
  assert.equal(again.holder.pid, process.pid);
  assert.equal(lockHolder(file)?.pid, process.pid);
  lock.release();
  assert.equal(fs.existsSync(file), false);
  assert.equal(lockHolder(file), null);
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => n.startsWith('a.lock')),
    [],
    'no record or guard files left',
  );
});

test('a stale lock is taken over: its holder is dead, its pid now belongs to a process started later, or it is not a lock at all', () => {
  const file = path.join(dir, 'b.lock');
  const stale = [
    JSON.stringify({ pid: deadPid(), start: null }),
    JSON.stringify({ pid: process.pid, start: '1' }), // this pid, but a different process (start time)
    'garbage',
    '',
    JSON.stringify({ pid: 'x' }),
  ];
  for (const content of stale) {
    fs.writeFileSync(file, content);
    const lock = acquireLock(file);
    assert.ok(lock instanceof ServerLock, `taken over from ${JSON.stringify(content)}`);
    assert.equal(readLock(file)?.pid, process.pid);
    lock.release();
  }
});

test('a holder releases only its own lock: one replaced under it stays', () => {
  const file = path.join(dir, 'c.lock');
  const lock = acquireLock(file);
  assert.ok(lock instanceof ServerLock);
  fs.rmSync(file);
  fs.writeFileSync(file, JSON.stringify({ pid: 1, start: null }));
  lock.release();
  assert.ok(fs.existsSync(file), "another process's lock is left alone");
  fs.rmSync(file);
});

test('of several processes that try at once, exactly one gets the lock (also over a stale one)', async () => {
  const file = path.join(dir, 'd.lock');
  for (const start of ['none', 'stale']) {
    if (start === 'stale') fs.writeFileSync(file, JSON.stringify({ pid: deadPid(), start: null }));
    // Each holds on (to what it got) until every one has answered: then this closes their stdin.
    const script = `import { acquireLock, ServerLock } from ${JSON.stringify(LOCK_JS)};
      const r = acquireLock(${JSON.stringify(file)}); process.stdout.write(r instanceof ServerLock ? 'got' : 'held');
      process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script]));
    const closed = children.map((c) => new Promise<void>((resolve) => c.on('close', () => resolve())));
    const outs = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve) => {
            let out = '';
            c.stdout.on('data', (d: Buffer) => {
              out += d.toString();
              resolve(out);
            });
            c.on('close', () => resolve(out));
          }),
      ),
    );
    for (const c of children) c.stdin.end();
    await Promise.all(closed);
    assert.deepEqual(outs.sort(), ['got', 'held', 'held', 'held'], `${start}: ${outs.join(' ')}`);
    assert.equal(fs.existsSync(file), false, 'the holder removed it when it exited');
  }
});

test('processAlive: this process yes; a dead pid, 0 and -1 no', () => {
  assert.ok(processAlive(process.pid));
  assert.ok(!processAlive(deadPid()));
  assert.ok(!processAlive(0));
  assert.ok(!processAlive(-1));
});

test('files are made only where nothing is (a symlink is not followed), and removed only while they are the file that was made', () => {
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'precious');
  const link = path.join(dir, 'link');
  fs.symlinkSync(victim, link);
  assert.throws(() => createExclusive(link), /EEXIST/);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
  const file = path.join(dir, 'mine');
  fs.closeSync(createExclusive(file));
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const id = identity(file);
  // Someone moves it away and puts another file under its name (the first still exists, so the inode differs).
  fs.renameSync(file, path.join(dir, 'moved'));
  fs.writeFileSync(file, "someone else's, made since");
  assert.equal(unlinkIfSame(file, id), false);
  assert.equal(fs.readFileSync(file, 'utf8'), "someone else's, made since");
  assert.equal(unlinkIfSame(file, identity(file)), true);
  assert.equal(fs.existsSync(file), false);
});
