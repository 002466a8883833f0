/**
 * One server per model, decided atomically: the process that serves a model directory holds
 * `model-<hash>.lock` in the runtime folder, a file that names it (pid, and on Linux the process's
 * start time, so a pid the system has since given to another process does not count).
 *
 * Taking it: the holder's record is written to a file of its own (O_EXCL, never a name that exists),
 * then hard-linked to the lock's name: link() fails with EEXIST where the lock exists, so of two
 * processes that try at once exactly one gets it, and the lock is never seen half-written. A lock
 * whose holder is gone (killed, crashed) is stale: it is removed under a second, short-lived guard
 * file, after reading it again, so two processes that both find it stale cannot remove a fresh one.
 * The holder removes the lock when it exits, only if the lock is still the file it made.
 */
import * as fs from 'node:fs';
import { type FileIdentity, RuntimeDirError, createExclusive, identity, unlinkIfSame, uniqueBeside } from './runtime.js';

/** Who holds a lock. */
export interface LockHolder {
  readonly pid: number;
  /** /proc/<pid>/stat's start time (clock ticks since boot), or null where there is no /proc. */
  readonly start: string | null;
}

/** A process's start time from /proc (null where unknown), and whether it is a zombie. */
function procStat(pid: number): { start: string; zombie: boolean } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { start: f[19] ?? '', zombie: f[0] === 'Z' || f[0] === 'X' };
  } catch {
    return null;
  }
}

/**
 * Whether a process is alive: it exists, is not a zombie (a process that has exited but nobody
 * reaped, as happens to detached servers under a container's init), and, where `start` is known,
 * started when the holder did.
 */
export function processAlive(pid: number, start: string | null = null): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(pid);
  if (st === null) return !fs.existsSync('/proc/self/stat'); // no /proc: kill(0) is all there is
  return !st.zombie && (start === null || st.start === start);
}

/** This process as a lock's holder. */
function me(): LockHolder {
  return { pid: process.pid, start: procStat(process.pid)?.start ?? null };
}

/** The holder a lock file names, or null where there is no lock (or it cannot be read: a torn or foreign file is stale). */
export function readLock(file: string): LockHolder | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && (v.start === null || typeof v.start === 'string')) return { pid: v.pid, start: v.start };
  } catch {
    // not ours: stale
  }
  return { pid: -1, start: null };
}

/** The live holder of a lock, or null where it is free or stale. */
export function lockHolder(file: string): LockHolder | null {
  const h = readLock(file);
  return h !== null && processAlive(h.pid, h.start) ? h : null;
}

/** A lock this process holds. */
export class ServerLock {
  private released = false;
  private readonly onExit = () => this.release();

  constructor(
    readonly file: string,
    private readonly id: FileIdentity | null,
  ) {
    process.once('exit', this.onExit);
  }

  /** Gives the lock up (removing the file only if it is still the one this process made); idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    if (readLock(this.file)?.pid === process.pid) unlinkIfSame(this.file, this.id);
  }
}

/** Writes `holder` to a file of its own beside `file` and returns its name. */
function writeRecord(file: string, holder: LockHolder): string {
  const tmp = uniqueBeside(file, 'new');
  const fd = createExclusive(tmp);
  try {
    fs.writeSync(fd, `${JSON.stringify(holder)}\n`);
  } finally {
    fs.closeSync(fd);
  }
  return tmp;
}

/** Removes a stale lock under a guard, after checking again that it is still stale. */
function removeStale(file: string, seen: LockHolder | null): void {
  const guard = `${file}.steal`;
  let fd: number;
  try {
    fd = createExclusive(guard);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another process is removing it right now; a guard left by one that died doing so is old.
    try {
      if (Date.now() - fs.lstatSync(guard).mtimeMs > 5000) fs.unlinkSync(guard);
    } catch {
      // gone already
    }
    return;
  }
  fs.closeSync(fd);
  const guardId = identity(guard);
  try {
    const now = readLock(file);
    if (now !== null && now.pid === seen?.pid && now.start === seen.start && lockHolder(file) === null) fs.rmSync(file, { force: true });
  } finally {
    unlinkIfSame(guard, guardId);
  }
}

/**
 * Takes the lock at `file` for this process: a ServerLock, or the live process that holds it.
 * A stale lock is taken over.
 */
export function acquireLock(file: string): ServerLock | { readonly holder: LockHolder } {
  try {
    return tryAcquire(file);
  } catch (e) {
    if (e instanceof RuntimeDirError) throw e;
    throw new RuntimeDirError(`cannot take the lock ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'check that the runtime folder is writable (and the disk not full)',
      cause: e,
    });
  }
}

function tryAcquire(file: string): ServerLock | { readonly holder: LockHolder } {
  const holder = me();
  for (let attempt = 0; ; attempt++) {
    const tmp = writeRecord(file, holder);
    try {
      fs.linkSync(tmp, file);
      return new ServerLock(file, identity(file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    const seen = readLock(file);
    if (seen !== null && processAlive(seen.pid, seen.start)) return { holder: seen };
    if (attempt >= 50)
      throw new RuntimeDirError(`could not take the lock ${file}: it keeps changing`, {
        hint: 'another unicorn keeps starting and stopping a server for this model; try again',
      });
    removeStale(file, seen);
    if (attempt > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}
