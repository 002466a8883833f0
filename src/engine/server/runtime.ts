/**
 * The resident server's runtime folder and the files in it: one socket, one lock and one log per
 * model directory. The folder is where a prompt goes and an answer comes from, so it must be this
 * user's alone: another user who could create it, or a file in it, could read the prompts, answer
 * in the model's place, or have a log written through a symlink into a file of the victim's.
 *
 * What is checked, every time the folder is used (not only when it is made):
 * - it is created with mkdir 0700 (never recursively, never chmod-ed into shape afterwards);
 * - lstat says it is a real directory (not a symlink), owned by this user, with no group or other
 *   permission bits; its parent is not writable by others unless sticky (as /tmp is), so nobody
 *   else can rename it away and put another in its place;
 * - a socket is connected to only when lstat says it is a socket (not a symlink, not a plain file)
 *   owned by this user (Node has no SO_PEERCRED; in a private folder the owner of the socket file
 *   is the process that bound it);
 * - files are created with O_CREAT | O_EXCL | O_NOFOLLOW (a name that exists, symlink or not, is
 *   never opened for writing), and removed only when lstat still shows the very file that was made.
 * Anything else is refused with a RuntimeDirError that says what to remove.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnicornError } from '../errors.js';

/** The runtime folder, or a file in it, is not this user's alone (or cannot be made). */
export class RuntimeDirError extends UnicornError {}

/** This process's uid, or null where there are none (Windows). */
function myUid(): number | null {
  return typeof process.getuid === 'function' ? process.getuid() : null;
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;

/** Where the folder is: $XDG_RUNTIME_DIR/unicorn, else unicorn-<uid> in the temp dir. */
export function runtimeDirPath(): string {
  const base = process.env['XDG_RUNTIME_DIR'];
  if (base !== undefined && base !== '') return path.join(base, 'unicorn');
  return path.join(os.tmpdir(), `unicorn-${os.userInfo().uid}`);
}

/** The hint for a folder that is not ours: remove it, or use another place. */
function notOursHint(dir: string): string {
  return `someone else may have made it to read your prompts or answer in the model's place: if you did not, remove it (rm -r ${dir}; ask an administrator where it is not yours to remove), or set XDG_RUNTIME_DIR to a private folder of yours`;
}

/**
 * Throws a RuntimeDirError unless `dir` is a real directory (lstat: not a symlink) owned by this
 * user with no group or other permission bits.
 */
export function checkPrivateDir(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    throw new RuntimeDirError(`cannot check the runtime folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'set XDG_RUNTIME_DIR to a private folder of yours',
      cause: e,
    });
  }
  const uid = myUid();
  const why = st.isSymbolicLink()
    ? 'it is a symlink'
    : !st.isDirectory()
      ? 'it is not a directory'
      : uid !== null && st.uid !== uid
        ? `it belongs to uid ${st.uid}, not to you (uid ${uid})`
        : (st.mode & 0o077) !== 0
          ? `its mode is ${octal(st.mode)}: others may use it (it must be 0700)`
          : null;
  if (why !== null) throw new RuntimeDirError(`the runtime folder ${dir} is not safe: ${why}`, { hint: notOursHint(dir) });
}

/** Refuses a parent folder that others may write to without the sticky bit (they could swap the runtime folder). */
function checkParent(parent: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(parent);
  } catch (e) {
    throw new RuntimeDirError(`cannot use ${parent} for the runtime folder: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'set XDG_RUNTIME_DIR (or TMPDIR) to a folder that exists and is yours',
      cause: e,
    });
  }
  if (!st.isDirectory())
    throw new RuntimeDirError(`cannot use ${parent} for the runtime folder: it is not a directory`, {
      hint: 'set XDG_RUNTIME_DIR (or TMPDIR) to a folder of yours',
    });
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) {
    throw new RuntimeDirError(
      `cannot use ${parent} for the runtime folder: anyone may write to it (mode ${octal(st.mode)}, not sticky), so anyone could replace the folder`,
      { hint: 'set XDG_RUNTIME_DIR (or TMPDIR) to a private folder of yours' },
    );
  }
}

/**
 * The runtime folder, made (mkdir 0700) where it is missing, and checked every time (checkPrivateDir).
 * Throws a RuntimeDirError, never a raw EPERM/EACCES, where it is not this user's alone.
 */
export function runtimeDir(): string {
  const dir = runtimeDirPath();
  checkParent(path.dirname(dir));
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      throw new RuntimeDirError(`cannot create the runtime folder ${dir}: ${code ?? String(e)}`, {
        hint: 'set XDG_RUNTIME_DIR (or TMPDIR) to a folder of yours that you can write to',
        cause: e,
      });
    }
  }
  checkPrivateDir(dir);
  return dir;
}

/**
 * Checks the socket at `file` before anything is sent to it: null where nothing is there; throws a
 * RuntimeDirError where its folder is not private or it is not a socket of this user's (a symlink,
 * a plain file, another user's socket).
 */
export function checkOwnSocket(file: string): 'socket' | null {
  checkPrivateDir(path.dirname(file));
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RuntimeDirError(`cannot check ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  const uid = myUid();
  const why = st.isSymbolicLink()
    ? 'it is a symlink'
    : !st.isSocket()
      ? 'it is not a socket'
      : uid !== null && st.uid !== uid
        ? `it belongs to uid ${st.uid}, not to you (uid ${uid})`
        : null;
  if (why !== null) {
    throw new RuntimeDirError(`refusing to talk to the resident server at ${file}: ${why}`, {
      hint: `no server of yours made it: remove it (rm ${file}) and load the model again`,
    });
  }
  return 'socket';
}

/** A model directory as the server and its clients name it: the real path (symlinks resolved), absolute. */
export function realModelDir(modelDir: string): string {
  try {
    return fs.realpathSync(modelDir);
  } catch {
    return path.resolve(modelDir);
  }
}

/** `model-<hash of the real path>`: the stem of a model's socket, lock and log. */
export function modelStem(modelDir: string): string {
  return `model-${createHash('sha256').update(realModelDir(modelDir)).digest('hex').slice(0, 16)}`;
}

/** The socket of the server holding a model directory. */
export function socketFor(modelDir: string): string {
  return path.join(runtimeDir(), `${modelStem(modelDir)}.sock`);
}

/** The lock that decides which process serves a model directory (see lock.ts). */
export function lockFor(modelDir: string): string {
  return path.join(runtimeDir(), `${modelStem(modelDir)}.lock`);
}

/** The log of the server holding a model directory (kept after a crash, removed after a clean stop). */
export function logFor(modelDir: string): string {
  return path.join(runtimeDir(), `${modelStem(modelDir)}.log`);
}

/**
 * Creates a new file that did not exist (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600) and returns its
 * descriptor; a name that exists, a symlink included, fails with EEXIST instead of being followed.
 */
export function createExclusive(file: string, readable = false): number {
  const c = fs.constants;
  return fs.openSync(file, (readable ? c.O_RDWR : c.O_WRONLY) | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
}

/** A fresh name beside `file` for a file about to be made (`<file>.<what>-<pid>-<random>`). */
export function uniqueBeside(file: string, what: string): string {
  return `${file}.${what}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Which file a path names (device, inode, birth time), to tell it from another made later under the same name. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly birthtimeMs: number;
}

export function identityOf(st: fs.Stats): FileIdentity {
  return { dev: st.dev, ino: st.ino, birthtimeMs: st.birthtimeMs };
}

/** The identity of what `file` names now (lstat), or null where nothing does. */
export function identity(file: string): FileIdentity | null {
  try {
    return identityOf(fs.lstatSync(file));
  } catch {
    return null;
  }
}

export function sameFile(a: FileIdentity | null, b: FileIdentity | null): boolean {
  return a !== null && b !== null && a.dev === b.dev && a.ino === b.ino && a.birthtimeMs === b.birthtimeMs;
}

/** Removes `file` only if it is still the file `id` identified (never one made since by someone else). */
export function unlinkIfSame(file: string, id: FileIdentity | null): boolean {
  if (id === null || !sameFile(identity(file), id)) return false;
  try {
    fs.unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}
