/**
 * The Hugging Face cache, laid out as huggingface_hub lays it out (file_download.py, and the
 * "Understand caching" guide), so that huggingface-cli, transformers and vLLM share it with unicorn:
 *
 *   <cache>/models--{org}--{name}/
 *     blobs/<etag>                    the file's bytes, named by its ETag (sha256 for LFS files, git sha1 for others)
 *     blobs/<etag>.incomplete         a download in progress (resumed with a Range request)
 *     snapshots/<commit>/<file>       a relative symbolic link to ../../blobs/<etag>
 *     refs/<revision>                 the commit a branch or tag pointed at when last pulled
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UnicornError } from '../errors.js';
import { commitTemp, discardTemp, tempPathFor, writeFailure, writeFileAtomic } from '../formats/atomic.js';
import { type RepoRef, isCommit, refText } from './repo-id.js';

/** models--org--name: the folder of one model repo. */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

export function repoFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, repoFolderName(repo));
}

export function blobPath(folder: string, etag: string): string {
  return path.join(folder, 'blobs', etag);
}

export function incompletePath(folder: string, etag: string): string {
  return `${blobPath(folder, etag)}.incomplete`;
}

export function snapshotDir(folder: string, commit: string): string {
  return path.join(folder, 'snapshots', commit);
}

/** The commit `revision` names in the cache: itself when it is a commit, else what refs/<revision> holds. */
export function cachedCommit(folder: string, revision: string): string | undefined {
  if (isCommit(revision)) return revision;
  try {
    const c = fs.readFileSync(path.join(folder, 'refs', revision), 'utf8').trim();
    return isCommit(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Records that `revision` points at `commit` (huggingface_hub writes no ref for a revision that is itself the commit). */
export function writeRef(folder: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const file = path.join(folder, 'refs', revision);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (e) {
    throw writeFailure(file, e);
  }
  writeFileAtomic(file, commit);
}

/**
 * Makes snapshots/<commit>/<file> a relative link to the blob, atomically (a link under a temporary
 * name, renamed over the final one), so a reader sees either no file or the whole verified one.
 */
export function linkSnapshotFile(folder: string, commit: string, file: string, etag: string): void {
  const link = path.join(snapshotDir(folder, commit), ...file.split('/'));
  const target = path.relative(path.dirname(link), blobPath(folder, etag));
  try {
    fs.mkdirSync(path.dirname(link), { recursive: true });
    if (fs.readlinkSync(link, { encoding: 'utf8' }) === target) return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EINVAL') throw writeFailure(link, e);
  }
  const tmp = tempPathFor(link);
  try {
    fs.symlinkSync(target, tmp);
    commitTemp(tmp, link);
  } catch (e) {
    discardTemp(tmp);
    throw writeFailure(link, e);
  }
}

/** What a snapshot lacks to be a model unicorn can load: config.json, and every weight file its index names. */
export function missingModelFiles(dir: string): string[] {
  const missing: string[] = [];
  const has = (f: string) => {
    try {
      return fs.statSync(path.join(dir, f)).isFile();
    } catch {
      return false;
    }
  };
  if (!has('config.json')) missing.push('config.json');
  const indexName = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.safetensors.index.json')) : undefined;
  if (indexName !== undefined) {
    try {
      const index = JSON.parse(fs.readFileSync(path.join(dir, indexName), 'utf8')) as { weight_map?: Record<string, string> };
      for (const shard of new Set(Object.values(index.weight_map ?? {}))) if (!has(shard)) missing.push(shard);
    } catch {
      missing.push(`${indexName} (unreadable)`);
    }
  } else if (!fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => f.endsWith('.safetensors') && has(f))) {
    missing.push('*.safetensors');
  }
  return missing;
}

export interface CachedSnapshot {
  readonly repo: string;
  readonly commit: string;
  readonly dir: string;
}

/**
 * The cached snapshot of `ref` that unicorn can load, or a one-line error saying what to pull: nothing
 * cached, the revision never pulled, or a snapshot another download left without all its weights.
 */
export function findSnapshot(cacheDir: string, ref: RepoRef): CachedSnapshot {
  const folder = repoFolder(cacheDir, ref.repo);
  const pull = `unicorn pull ${refText(ref)}`;
  const commit = cachedCommit(folder, ref.revision);
  const dir = commit === undefined ? undefined : snapshotDir(folder, commit);
  if (commit === undefined || dir === undefined || !fs.existsSync(dir)) {
    const where = fs.existsSync(folder)
      ? `${refText(ref)} is not (completely) downloaded: ${folder} has no snapshot of revision ${ref.revision}`
      : `${refText(ref)} is not a path, and not in the Hugging Face cache (${cacheDir})`;
    throw new UnicornError(where, { hint: `download it with \`${pull}\`` });
  }
  const missing = missingModelFiles(dir);
  if (missing.length > 0)
    throw new UnicornError(
      `${refText(ref)}: the cached snapshot ${dir} is incomplete (no ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})`,
      {
        hint: `finish the download with \`${pull}\``,
      },
    );
  return { repo: ref.repo, commit, dir };
}

export interface CachedFile {
  readonly file: string;
  readonly bytes: number;
}

export interface CachedModel {
  readonly repo: string;
  readonly commit: string;
  readonly dir: string;
  /** The refs (branches, tags) that point at this commit. */
  readonly refs: readonly string[];
  readonly files: readonly CachedFile[];
  readonly bytes: number;
  readonly missing: readonly string[];
}

function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix === '' ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) out.push(...walk(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

function readRefs(folder: string): Map<string, string[]> {
  const byCommit = new Map<string, string[]>();
  const refsDir = path.join(folder, 'refs');
  if (!fs.existsSync(refsDir)) return byCommit;
  for (const name of walk(refsDir)) {
    const commit = cachedCommit(folder, name);
    if (commit !== undefined) byCommit.set(commit, [...(byCommit.get(commit) ?? []), name]);
  }
  return byCommit;
}

/** Every model snapshot in the cache (files whose blob is gone are left out), sorted by repo. */
export function listCache(cacheDir: string): CachedModel[] {
  if (!fs.existsSync(cacheDir)) return [];
  const out: CachedModel[] = [];
  for (const entry of fs.readdirSync(cacheDir).sort()) {
    if (!entry.startsWith('models--')) continue;
    const folder = path.join(cacheDir, entry);
    const repo = entry.slice('models--'.length).split('--').join('/');
    const snapshots = path.join(folder, 'snapshots');
    if (!fs.existsSync(snapshots)) continue;
    const refs = readRefs(folder);
    for (const commit of fs.readdirSync(snapshots).sort()) {
      const dir = path.join(snapshots, commit);
      const files: CachedFile[] = [];
      for (const file of walk(dir)) {
        try {
          files.push({ file, bytes: fs.statSync(path.join(dir, file)).size });
        } catch {
          // a link whose blob was deleted
        }
      }
      out.push({ repo, commit, dir, refs: refs.get(commit) ?? [], files, bytes: files.reduce((a, f) => a + f.bytes, 0), missing: missingModelFiles(dir) });
    }
  }
  return out;
}
