/**
 * Atomic outputs: write under a temporary name in the destination's directory, fsync, rename.
 * Temporary paths are registered so that an exit (error, Ctrl-C through the CLI's signal handler)
 * removes them: nothing partial is ever left under a final name, and no litter under a temp name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WriteError } from '../errors.js';

const pending = new Set<string>();
let hooked = false;

function cleanupAll(): void {
  for (const p of pending) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  pending.clear();
}

/**
 * Makes Ctrl-C (SIGINT) and SIGTERM leave through process exit, so the 'exit' hook removes every
 * registered temporary path. The CLI calls this once at start-up.
 */
export function exitCleanlyOnSignals(): void {
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
}

/** Returns a fresh temporary path beside `finalPath` and registers it for cleanup at exit. */
export function tempPathFor(finalPath: string): string {
  if (!hooked) {
    process.on('exit', cleanupAll);
    hooked = true;
  }
  const dir = path.dirname(finalPath);
  const p = path.join(dir, `.${path.basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  pending.add(p);
  return p;
}

/** Removes a temporary path (file or directory) and forgets it. */
export function discardTemp(tempPath: string): void {
  fs.rmSync(tempPath, { recursive: true, force: true });
  pending.delete(tempPath);
}

/** Renames a finished temporary path onto its final name and fsyncs the directory. */
export function commitTemp(tempPath: string, finalPath: string): void {
  fs.renameSync(tempPath, finalPath);
  pending.delete(tempPath);
  try {
    const dfd = fs.openSync(path.dirname(finalPath), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is atomic.
  }
}

/** Turns an fs error into a WriteError with a message a user can act on. */
export function writeFailure(target: string, e: unknown): WriteError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') return new WriteError(`disk full while writing ${target}; nothing was left behind`, { hint: 'free some space or choose another output location', cause: e });
  if (code === 'EACCES' || code === 'EPERM') return new WriteError(`no permission to write ${target}`, { cause: e });
  if (code === 'EDQUOT') return new WriteError(`disk quota exceeded while writing ${target}; nothing was left behind`, { cause: e });
  return new WriteError(`cannot write ${target}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
