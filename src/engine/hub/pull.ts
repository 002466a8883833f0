/**
 * `unicorn pull`'s engine: a model from the Hub into the shared cache, as huggingface_hub's
 * snapshot_download does it. The revision is resolved to a commit (GET /api/models/{repo}/revision/{rev}
 * with blobs=true: the commit's `sha` and its `siblings` with sizes and hashes); config.json comes
 * first and an architecture unicorn does not run is refused before any weight is fetched; the free
 * space is checked against the sizes the Hub reports; then the files come from /{repo}/resolve/{commit}/{file},
 * a few at a time, each into blobs/<etag>.incomplete (resumed with a Range request, also after a
 * dropped connection), verified (sha256 for LFS files, the size for others) and only then renamed to
 * blobs/<etag>. The snapshot's links and the ref are written last, once every file is there: an
 * interrupted pull leaves verified blobs and resumable partial files, never a snapshot `run` would load.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, UnicornError } from '../errors.js';
import { writeFailure } from '../formats/atomic.js';
import { type ServerLock, acquireLock } from '../server/lock.js';
import { runnableFamily } from '../models/architectures.js';
import { SUPPORTED_ARCHITECTURES } from '../models/spec.js';
import { blobPath, findSnapshot, incompletePath, linkSnapshotFile, repoFolder, snapshotDir, writeRef } from './cache.js';
import { HubNetworkError, type ErrorContext, hubRequest, hubStatusError, networkProblem, readBody } from './http.js';
import { type RepoRef, isCommit, refText } from './repo-id.js';
import { selectFiles, weightIndexFile } from './select.js';

/** One file of the commit, as the model info describes it. */
export interface RemoteFile {
  readonly file: string;
  readonly size: number;
  /** What the Hub's ETag is for it: the sha256 of an LFS file, the git blob id of another. */
  readonly etag: string;
  readonly lfs: boolean;
}

export interface ModelRevision {
  readonly commit: string;
  readonly files: readonly RemoteFile[];
}

export type PullEvent =
  | { readonly kind: 'resolved'; readonly commit: string; readonly files: readonly RemoteFile[]; readonly toFetch: number; readonly bytes: number }
  | { readonly kind: 'start'; readonly file: string; readonly size: number; readonly from: number }
  | { readonly kind: 'progress'; readonly file: string; readonly done: number; readonly size: number }
  | { readonly kind: 'done'; readonly file: string; readonly size: number }
  | { readonly kind: 'retry'; readonly file: string; readonly why: string; readonly attempt: number };

export interface PullOptions {
  readonly cacheDir: string;
  readonly endpoint: string;
  readonly token?: string | undefined;
  readonly offline?: boolean;
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  /** Files downloaded at once (huggingface_hub: 8). */
  readonly concurrency?: number;
  /** Times a file is resumed after a dropped connection before the pull gives up. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  readonly idleTimeoutMs?: number;
  /** Free bytes where the blobs go (statfs by default). */
  readonly freeBytes?: (dir: string) => number;
  readonly onEvent?: (e: PullEvent) => void;
  readonly signal?: AbortSignal;
}

export interface PullResult {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly dir: string;
  readonly files: readonly RemoteFile[];
  /** Bytes that came over the network in this run. */
  readonly downloadedBytes: number;
  /** Files that were already in the cache. */
  readonly cachedFiles: number;
  /** Answered from the cache alone (HF_HUB_OFFLINE). */
  readonly offline: boolean;
}

/** A download that stopped: what was kept, and how to go on. */
export class PullError extends UnicornError {}

const quotePath = (file: string) => file.split('/').map(encodeURIComponent).join('/');

export function normalizeEtag(raw: string | string[] | undefined): string | undefined {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function context(ref: RepoRef, o: PullOptions, file?: string): ErrorContext {
  return { repo: ref.repo, revision: ref.revision, endpoint: o.endpoint, authenticated: o.token !== undefined, ...(file === undefined ? {} : { file }) };
}

/** The commit a revision points at and its files, with sizes and hashes. */
export async function resolveRevision(ref: RepoRef, o: PullOptions): Promise<ModelRevision> {
  const url = `${o.endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}?blobs=true`;
  const { res } = await hubRequest(url, {
    token: o.token,
    ...(o.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: o.idleTimeoutMs }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  if (res.statusCode !== 200) throw await hubStatusError(res, context(ref, o));
  let info: { sha?: unknown; siblings?: unknown };
  try {
    info = JSON.parse(await readBody(res)) as typeof info;
  } catch (e) {
    if (e instanceof UnicornError) throw e;
    throw new HubNetworkError(`${o.endpoint} sent model info for ${refText(ref)} that is not JSON`, { hint: 'is HF_ENDPOINT a Hugging Face Hub or mirror?' });
  }
  const commit = info.sha;
  if (typeof commit !== 'string' || !isCommit(commit) || !Array.isArray(info.siblings))
    throw new HubNetworkError(`${o.endpoint}: the model info for ${refText(ref)} has no commit sha or file list`, {
      hint: 'is HF_ENDPOINT a Hugging Face Hub or mirror?',
    });
  const files: RemoteFile[] = [];
  for (const s of info.siblings as { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } | null }[]) {
    const file = s.rfilename;
    if (typeof file !== 'string' || file === '' || file.startsWith('/') || file.split('/').some((p) => p === '..' || p === '.' || p === '')) continue;
    const lfs = s.lfs !== undefined && s.lfs !== null;
    const etag = lfs ? s.lfs?.sha256 : s.blobId;
    const size = lfs ? s.lfs?.size : s.size;
    if (typeof etag !== 'string' || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag) || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw new HubNetworkError(`${o.endpoint}: the model info for ${refText(ref)} gives no size and hash for ${file}`, {
        hint: 'the endpoint must answer ?blobs=true as the Hub does; unset HF_ENDPOINT to use https://huggingface.co',
      });
    files.push({ file, size, etag, lfs });
  }
  return { commit, files };
}

function fileSize(p: string): number | undefined {
  try {
    const st = fs.statSync(p);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** Feeds the first bytes of a partial file to the hash, so a resumed download is verified whole. */
async function hashPrefix(hash: Hash, file: string): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

class Dropped extends Error {}

interface Downloader {
  readonly ref: RepoRef;
  readonly folder: string;
  readonly commit: string;
  readonly o: PullOptions;
  downloaded: number;
}

/** One attempt: from the partial file's end to the file's end. Dropped connections throw Dropped (resumable). */
async function attempt(d: Downloader, f: RemoteFile, partial: string): Promise<void> {
  let from = fileSize(partial) ?? 0;
  if (from > f.size) {
    fs.truncateSync(partial, 0);
    from = 0;
  }
  const url = `${d.o.endpoint}/${d.ref.repo}/resolve/${d.commit}/${quotePath(f.file)}`;
  const { res, first } = await hubRequest(url, {
    token: d.o.token,
    headers: from > 0 ? { range: `bytes=${from}-` } : {},
    ...(d.o.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: d.o.idleTimeoutMs }),
    ...(d.o.signal === undefined ? {} : { signal: d.o.signal }),
  });
  const status = res.statusCode ?? 0;
  if (status === 416 && from === f.size) {
    res.resume();
  } else if (status === 416) {
    // The partial file does not fit the file the server has: start it over.
    res.resume();
    fs.truncateSync(partial, 0);
    throw new Dropped(`the server refused to resume ${f.file} at byte ${from}`);
  } else if (status !== 200 && status !== 206) {
    throw await hubStatusError(res, context(d.ref, d.o, f.file));
  }
  // The Hub's ETag names the blob: X-Linked-Etag on a redirect to the CDN (an LFS file), ETag otherwise.
  const etag = normalizeEtag(first['x-linked-etag'] ?? first['etag']);
  if (etag !== undefined && etag !== f.etag) {
    res.destroy();
    throw new PullError(`${f.file}: the Hub's ETag ${etag} is not the ${f.etag} its model info gave for commit ${d.commit}`, {
      hint: 'the repo changed while downloading, or a proxy rewrote the file: run the pull again',
    });
  }
  if (status === 200 && from > 0) from = 0; // the server ignored the Range: start over
  if (status === 206) {
    const m = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
    if (m === null || Number(m[1]) !== from) {
      res.destroy();
      fs.truncateSync(partial, 0);
      throw new Dropped(`the server resumed ${f.file} at the wrong offset`);
    }
  }
  d.o.onEvent?.({ kind: 'start', file: f.file, size: f.size, from });
  const fh = await fs.promises.open(partial, from === 0 ? 'w' : 'a');
  let done = from;
  try {
    if (status !== 416) {
      try {
        for await (const chunk of res) {
          const b = chunk as Buffer;
          if (done + b.byteLength > f.size)
            throw new PullError(`${f.file}: the server sent more than the ${f.size} bytes the Hub reports`, { hint: 'run the pull again' });
          let off = 0;
          while (off < b.byteLength) off += (await fh.write(b, off, b.byteLength - off)).bytesWritten;
          done += b.byteLength;
          d.downloaded += b.byteLength;
          d.o.onEvent?.({ kind: 'progress', file: f.file, done, size: f.size });
        }
      } catch (e) {
        if (e instanceof UnicornError) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EACCES' || code === 'EROFS' || code === 'EIO') throw e;
        if (d.o.signal?.aborted === true) throw e;
        throw new Dropped(networkProblem(e));
      }
      if (done < f.size) throw new Dropped(`the connection closed at ${done} of ${f.size} bytes`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Takes the download lock of one blob: `.locks/models--org--name/<etag>.unicorn.lock` (beside the
 * locks huggingface_hub takes), the server's lock (server/lock.ts: made with a link, naming this
 * process and its start time, so a reused pid is not taken for the holder). A lock whose process is
 * gone is stale and taken over; a live one means another pull is downloading the file.
 */
function takeLock(d: Downloader, f: RemoteFile): ServerLock {
  const dir = path.join(path.dirname(d.folder), '.locks', path.basename(d.folder));
  const lock = path.join(dir, `${f.etag}.unicorn.lock`);
  let got: ReturnType<typeof acquireLock>;
  try {
    fs.mkdirSync(dir, { recursive: true });
    got = acquireLock(lock);
  } catch (e) {
    throw writeFailure(lock, e instanceof UnicornError && e.cause !== undefined ? e.cause : e);
  }
  if ('holder' in got) {
    const who = got.holder.pid === process.pid ? 'this process already' : `another process (pid ${got.holder.pid}, lock ${lock})`;
    throw new PullError(`${f.file} is being downloaded by ${who}`, {
      hint: `wait for it to finish, or stop it, then run \`unicorn pull ${refText(d.ref)}\` again`,
    });
  }
  return got;
}

/** Downloads one file into blobs/<etag>, resuming and verifying; returns whether it came over the network. */
async function fetchFile(d: Downloader, f: RemoteFile): Promise<boolean> {
  if (fileSize(blobPath(d.folder, f.etag)) === f.size) return false;
  const lock = takeLock(d, f);
  try {
    return await fetchLocked(d, f);
  } finally {
    lock.release();
  }
}

async function fetchLocked(d: Downloader, f: RemoteFile): Promise<boolean> {
  const blob = blobPath(d.folder, f.etag);
  if (fileSize(blob) === f.size) return false;
  const partial = incompletePath(d.folder, f.etag);
  const retries = d.o.retries ?? 3;
  for (let i = 0; ; i++) {
    try {
      await attempt(d, f, partial);
      break;
    } catch (e) {
      // A dropped connection, or one that failed to open, is resumed; anything else (an HTTP error, a full disk) is not.
      const resumable = e instanceof Dropped || (e instanceof HubNetworkError && d.o.signal?.aborted !== true);
      if (!(resumable && i < retries)) {
        if (e instanceof Dropped || e instanceof HubNetworkError) {
          const kept = fileSize(partial) ?? 0;
          throw new PullError(`${f.file}: ${e instanceof Dropped ? e.message : e.message} (${kept} of ${f.size} bytes kept in ${partial})`, {
            hint: `run \`unicorn pull ${refText(d.ref)}\` again: it resumes where this stopped`,
          });
        }
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT')
          throw new PullError(`disk full while downloading ${f.file}; the ${fileSize(partial) ?? 0} bytes so far are kept in ${partial}`, {
            hint: `free some space, then run \`unicorn pull ${refText(d.ref)}\` again to resume`,
          });
        if (typeof code === 'string' && !(e instanceof UnicornError) && code !== 'ABORT_ERR') throw writeFailure(partial, e);
        throw e;
      }
      d.o.onEvent?.({ kind: 'retry', file: f.file, why: (e as Error).message, attempt: i + 1 });
      await new Promise((r) => setTimeout(r, (d.o.retryDelayMs ?? 1000) * (i + 1)));
    }
  }
  // Verified before it gets its final name.
  const size = fileSize(partial) ?? 0;
  if (size !== f.size)
    throw new PullError(`${f.file}: ${size} bytes downloaded, the Hub reports ${f.size}`, { hint: `run \`unicorn pull ${refText(d.ref)}\` again` });
  if (f.lfs) {
    const hash = createHash('sha256');
    await hashPrefix(hash, partial);
    const got = hash.digest('hex');
    if (got !== f.etag) {
      fs.rmSync(partial, { force: true });
      throw new PullError(`${f.file}: the download is corrupt (sha256 ${got}, the Hub says ${f.etag}); it was deleted`, {
        hint: `run \`unicorn pull ${refText(d.ref)}\` again; if it keeps happening, a proxy or mirror is altering the file`,
      });
    }
  }
  try {
    fs.renameSync(partial, blob);
  } catch (e) {
    throw writeFailure(blob, e);
  }
  d.o.onEvent?.({ kind: 'done', file: f.file, size: f.size });
  return true;
}

/** Runs `work` over `items`, `n` at a time; the first failure stops new work and is thrown once the running ones end. */
async function pool<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>, stop: () => void): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (e) {
        if (failure === undefined) {
          failure = { e };
          stop();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure !== undefined) throw failure.e;
}

function readJsonBlob(file: string, name: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  } catch (e) {
    throw new ConfigError(`${name}: is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

function freeBytesAt(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Pulls `ref` into the cache; see the file's comment. */
export async function pullModel(ref: RepoRef, o: PullOptions): Promise<PullResult> {
  const folder = repoFolder(o.cacheDir, ref.repo);
  if (o.offline === true) {
    let snap;
    try {
      snap = findSnapshot(o.cacheDir, ref);
    } catch (e) {
      const why = fs.existsSync(folder) ? (e instanceof Error ? e.message : String(e)) : `${refText(ref)} is not in the Hugging Face cache (${o.cacheDir})`;
      throw new UnicornError(`HF_HUB_OFFLINE is set, and ${why}`, {
        hint: `unset HF_HUB_OFFLINE to download it with \`unicorn pull ${refText(ref)}\``,
      });
    }
    return { repo: ref.repo, revision: ref.revision, commit: snap.commit, dir: snap.dir, files: [], downloadedBytes: 0, cachedFiles: 0, offline: true };
  }
  const rev = await resolveRevision(ref, o);
  const byName = new Map(rev.files.map((f) => [f.file, f]));
  const config = byName.get('config.json');
  if (config === undefined)
    throw new ConfigError(`${refText(ref)} has no config.json, so it is not a transformers model unicorn can run`, {
      hint: `unicorn runs ${SUPPORTED_ARCHITECTURES.join(', ')} checkpoints in safetensors`,
    });
  try {
    fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
  } catch (e) {
    throw writeFailure(path.join(folder, 'blobs'), e);
  }
  // What the cache held before this run (config.json and the index come first, below).
  const cachedBefore = new Set(rev.files.filter((f) => fileSize(blobPath(folder, f.etag)) === f.size).map((f) => f.file));
  const abort = new AbortController();
  const signal = o.signal === undefined ? abort.signal : AbortSignal.any([o.signal, abort.signal]);
  const d: Downloader = { ref, folder, commit: rev.commit, o: { ...o, signal }, downloaded: 0 };
  // config.json alone decides whether the model is one unicorn runs: refused before any weight comes.
  await fetchFile(d, config);
  runnableFamily(readJsonBlob(blobPath(folder, config.etag), `${refText(ref)}: config.json`), `${refText(ref)}: config.json`);
  const names = rev.files.map((f) => f.file);
  const indexName = weightIndexFile(names);
  let shards: Set<string> | undefined;
  if (indexName !== undefined) {
    const index = byName.get(indexName)!;
    await fetchFile(d, index);
    const json = readJsonBlob(blobPath(folder, index.etag), `${refText(ref)}: ${indexName}`) as { weight_map?: unknown };
    if (typeof json.weight_map !== 'object' || json.weight_map === null)
      throw new ConfigError(`${refText(ref)}: ${indexName} has no weight_map`, { hint: 'the repo is not a complete safetensors checkpoint' });
    shards = new Set(Object.values(json.weight_map as Record<string, unknown>).filter((s): s is string => typeof s === 'string'));
    const absent = [...shards].filter((s) => !byName.has(s));
    if (absent.length > 0) throw new ConfigError(`${refText(ref)}: ${indexName} names shards the repo does not have: ${absent.slice(0, 3).join(', ')}`);
  }
  const chosen = selectFiles(names, {
    ...(o.include === undefined ? {} : { include: o.include }),
    ...(o.exclude === undefined ? {} : { exclude: o.exclude }),
    ...(shards === undefined ? {} : { shards }),
  }).map((n) => byName.get(n)!);
  if (!chosen.some((f) => f.file.endsWith('.safetensors')))
    throw new ConfigError(
      `${refText(ref)} has no safetensors weights${(o.exclude ?? []).length > 0 ? ' left after --exclude' : ''} (only ${names
        .filter((n) => !n.includes('/'))
        .slice(0, 6)
        .join(', ')}...)`,
      {
        hint: 'unicorn runs safetensors checkpoints; look for a repo of the model that has *.safetensors files',
      },
    );
  // Free space, against the sizes the Hub reports (partial files count for what they already hold).
  // Each blob once: two files with the same bytes share one (and one lock).
  const toFetch = [...new Map(chosen.filter((f) => fileSize(blobPath(folder, f.etag)) !== f.size).map((f) => [f.etag, f])).values()];
  const need = toFetch.reduce((a, f) => a + f.size - Math.min(f.size, fileSize(incompletePath(folder, f.etag)) ?? 0), 0);
  const free = (o.freeBytes ?? freeBytesAt)(path.join(folder, 'blobs'));
  if (need > free)
    throw new PullError(
      `${refText(ref)} needs ${need} more bytes (${(need / 1e9).toFixed(2)} GB) in ${o.cacheDir}, and only ${(free / 1e9).toFixed(2)} GB are free`,
      {
        hint: 'free some space, or set HF_HUB_CACHE to a disk with room',
      },
    );
  o.onEvent?.({ kind: 'resolved', commit: rev.commit, files: chosen, toFetch: toFetch.length, bytes: need });
  await pool(
    toFetch,
    Math.max(1, o.concurrency ?? 4),
    async (f) => void (await fetchFile(d, f)),
    () => abort.abort(),
  );
  // Every file is verified: now the snapshot, then the ref.
  for (const f of chosen) linkSnapshotFile(folder, rev.commit, f.file, f.etag);
  writeRef(folder, ref.revision, rev.commit);
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit: rev.commit,
    dir: snapshotDir(folder, rev.commit),
    files: chosen,
    downloadedBytes: d.downloaded,
    cachedFiles: chosen.filter((f) => cachedBefore.has(f.file)).length,
    offline: false,
  };
}
