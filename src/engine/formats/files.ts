/**
 * Paths from outside (command-line arguments, files inside a model directory) checked before use, so
 * that whatever a path points at (nothing, a symbolic link loop, a FIFO, a device, a directory where
 * a file is expected, something under /proc) gives one clear line instead of a hang or a raw errno:
 * - `pathProblem` names what an fs error code means for the user;
 * - `kindOf` names what a path is when it is not what was expected;
 * - `readRegularFile` reads a small text file without ever blocking on a FIFO or a device, and
 *   without reading more than a bound (a config file is never gigabytes; /dev/zero never ends).
 */
import * as fs from 'node:fs';
import { UnicornError } from '../errors.js';

/** A path that could not be used; `code` is the fs error code where there was one. */
export class FileError extends UnicornError {
  readonly code: string | undefined;
  constructor(message: string, code?: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** What an fs error means, in words (the code is kept in parentheses where it helps a search). */
export function pathProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'ELOOP':
      return 'a symbolic link loop (ELOOP): a link on the path leads back to itself';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'ENOTDIR':
      return 'a part of the path is a file, not a directory (ENOTDIR)';
    case 'ENAMETOOLONG':
      return 'the path is too long (ENAMETOOLONG)';
    case 'EISDIR':
      return 'is a directory';
    case 'EAGAIN':
      return 'cannot be read without waiting (EAGAIN): not a regular file';
    case 'EIO':
      return 'an I/O error while reading (EIO)';
    default:
      return `cannot be read (${code ?? (e instanceof Error ? e.message : String(e))})`;
  }
}

/** What a path is, for "is <kind>, not ..." messages. */
export function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a file';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a file or a directory';
}

/** fs.statSync, with a FileError naming the problem instead of a raw errno. */
export function statPath(target: string): fs.Stats {
  try {
    return fs.statSync(target);
  } catch (e) {
    throw new FileError(`${target}: ${pathProblem(e)}`, (e as NodeJS.ErrnoException).code, { cause: e });
  }
}

/** Files unicorn reads whole (configs, tokenizers, snapshots) stay under this unless a caller says. */
export const MAX_TEXT_FILE_BYTES = 256 << 20;

/**
 * Reads a regular file as UTF-8. Refuses anything else (a FIFO would block until a writer comes, a
 * device may never end) before reading: the path is stat-ed, then opened non-blocking and stat-ed
 * again through the descriptor, so a swap in between is caught too. Reads at most `maxBytes`.
 */
export function readRegularFile(file: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  const st = statPath(file);
  if (!st.isFile()) throw new FileError(`${file}: is ${kindOf(st)}, not a regular file`, st.isDirectory() ? 'EISDIR' : 'EINVAL');
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    throw new FileError(`${file}: ${pathProblem(e)}`, (e as NodeJS.ErrnoException).code, { cause: e });
  }
  try {
    const fst = fs.fstatSync(fd);
    if (!fst.isFile()) throw new FileError(`${file}: is ${kindOf(fst)}, not a regular file`, 'EINVAL');
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      // Files under /proc report size 0: read until the end, never past the bound.
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, maxBytes + 1 - total));
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.byteLength, null);
      } catch (e) {
        throw new FileError(`${file}: ${pathProblem(e)}`, (e as NodeJS.ErrnoException).code, { cause: e });
      }
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new FileError(`${file}: is larger than ${maxBytes} bytes, too large for what it should hold`, 'EFBIG');
      chunks.push(buf.subarray(0, n));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
