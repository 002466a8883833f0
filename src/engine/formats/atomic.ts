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
 * Makes Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed, an ssh session dropped) leave
 * through process exit, so the 'exit' hooks remove every registered temporary path; left to their
 * default, those signals end the process without running them. Exit codes are 128 + the signal's
 * number, as a shell reports a process killed by it. The CLI calls this once at start-up.
 */
export function exitCleanlyOnSignals(): void {
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  process.on('SIGHUP', () => process.exit(129));
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
  if (e instanceof WriteError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  const where = path.dirname(path.resolve(target));
  if (code === 'ENOSPC')
    return new WriteError(`disk full while writing ${target}; nothing was left behind`, {
      hint: 'free some space or choose another output location',
      cause: e,
    });
  if (code === 'EACCES' || code === 'EPERM')
    return new WriteError(`no permission to write ${target} (${code})`, { hint: 'choose an output location you can write to', cause: e });
  if (code === 'EDQUOT') return new WriteError(`disk quota exceeded while writing ${target}; nothing was left behind`, { cause: e });
  if (code === 'EROFS') return new WriteError(`cannot write ${target}: the file system is read-only (EROFS)`, { cause: e });
  if (code === 'ENOENT') {
    return new WriteError(
      `cannot write ${target}: ${fs.existsSync(where) ? `${where} takes no new files (ENOENT; /proc and /sys are like that)` : `the folder ${where} does not exist`}`,
      { hint: 'choose an output in an existing, ordinary folder', cause: e },
    );
  }
  if (code === 'ENOTDIR') return new WriteError(`cannot write ${target}: a part of the path is a file, not a folder (ENOTDIR)`, { cause: e });
  if (code === 'EISDIR') return new WriteError(`cannot write ${target}: it is a directory`, { hint: 'give a file name', cause: e });
  if (code === 'ELOOP') return new WriteError(`cannot write ${target}: a symbolic link loop (ELOOP) on the path`, { cause: e });
  if (code === 'ENAMETOOLONG') return new WriteError(`cannot write ${target}: the name is too long (ENAMETOOLONG)`, { cause: e });
  return new WriteError(`cannot write ${target}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/**
 * Writes a whole (small) file atomically: a temporary file beside it, fsync, rename; any failure is
 * a WriteError (disk full, no such folder, /proc...) and leaves neither the temporary file nor a
 * partial target. An existing target is replaced only if it is a regular file: a directory, a FIFO
 * or a device is refused. A symbolic link is followed (the file it points at is replaced, the link
 * stays), as a shell's `>` would; a dangling link or a link loop is refused.
 */
export function writeFileAtomic(given: string, data: string | Uint8Array): void {
  let target = given;
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(given);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw writeFailure(given, e);
  }
  if (st?.isSymbolicLink() === true) {
    try {
      target = fs.realpathSync(given);
      st = fs.statSync(target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new WriteError(
        `cannot write ${given}: ${code === 'ELOOP' ? 'a symbolic link loop (ELOOP)' : `a symbolic link that leads nowhere (${code ?? String(e)})`}`,
        { hint: 'give the name of a file to write', cause: e },
      );
    }
  }
  if (st !== undefined && !st.isFile()) {
    throw new WriteError(`cannot write ${given}: it exists and is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`, {
      hint: 'give the name of a file to write',
    });
  }
  const tmp = tempPathFor(target);
  try {
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let done = 0;
      while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    commitTemp(tmp, target);
  } catch (e) {
    try {
      discardTemp(tmp);
    } catch {
      // nothing was created
    }
    throw writeFailure(given, e);
  }
}
