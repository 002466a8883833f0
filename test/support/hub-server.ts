/**
 * A local stand-in for the Hugging Face Hub, speaking the protocol unicorn pull (and huggingface_hub)
 * use: GET /api/models/{repo}/revision/{rev}?blobs=true (sha, siblings with size, blobId, lfs), and
 * GET /{repo}/resolve/{rev}/{file}: a regular file straight from the endpoint with its git blob id as
 * ETag; an LFS file (*.safetensors) as a 302 to a second server (the "CDN", another origin) with
 * X-Linked-Etag (its sha256) and X-Linked-Size. Both honour Range. Errors carry X-Error-Code as the
 * Hub's do (RepoNotFound as 401 without a token, RevisionNotFound 404, GatedRepo 403). Faults on
 * request: a connection dropped after some bytes, a stall, a corrupted byte, a wrong ETag.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  /** Files of the one commit, by path. */
  readonly files: Map<string, Buffer>;
  readonly commit: string;
  /** Branches and tags; main is always there. */
  readonly refs?: readonly string[];
  /** Needs a token ("accept the licence"). */
  readonly gated?: boolean;
}

export interface Faults {
  /** Drop the connection after this many bytes of the body, for the next `times` requests of the file. */
  drop?: Map<string, { after: number; times: number }>;
  /** Stop sending (without closing) after this many bytes. */
  stall?: Map<string, number>;
  /** Close the connection before any reply, for the next `times` requests of the file. */
  hangUp?: Map<string, number>;
  /** Serve the file with one byte flipped. */
  corrupt?: Set<string>;
  /** Send this ETag instead of the right one. */
  wrongEtag?: Set<string>;
}

export interface Logged {
  readonly server: 'hub' | 'cdn';
  readonly path: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
}

export const TOKEN = 'hf_test_token';

export const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.byteLength}\0`).update(b).digest('hex');
export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const isLfs = (file: string) => file.endsWith('.safetensors');

export function commitOf(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

export interface HubServer {
  readonly endpoint: string;
  readonly cdn: string;
  readonly log: Logged[];
  readonly faults: Faults;
  close(): Promise<void>;
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** Sends `body` (with Range), applying the faults for `file`. */
function sendBytes(req: http.IncomingMessage, res: http.ServerResponse, file: string, body: Buffer, etag: string, faults: Faults): void {
  const hangUps = faults.hangUp?.get(file) ?? 0;
  if (hangUps > 0) {
    faults.hangUp!.set(file, hangUps - 1);
    req.socket.destroy();
    return;
  }
  let data = body;
  if (faults.corrupt?.has(file) === true && data.byteLength > 0) {
    data = Buffer.from(data);
    const i = data.byteLength >> 1;
    data[i] = data[i]! ^ 0xff;
  }
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m !== null) {
    start = Number(m[1]);
    if (start >= data.byteLength) {
      res.writeHead(416, { 'content-range': `bytes */${data.byteLength}` }).end();
      return;
    }
  }
  const part = data.subarray(start);
  res.writeHead(m === null ? 200 : 206, {
    'content-length': String(part.byteLength),
    etag: `"${etag}"`,
    'accept-ranges': 'bytes',
    ...(m === null ? {} : { 'content-range': `bytes ${start}-${data.byteLength - 1}/${data.byteLength}` }),
  });
  const drop = faults.drop?.get(file);
  if (drop !== undefined && drop.times > 0) {
    drop.times--;
    // A clean FIN after the bytes (an RST would let the client's kernel discard what it had not read yet),
    // and not at once: a client whose stream errors drops the chunks it had not taken yet, so a busy
    // client (CI with other work on its two cores) read none of them and resumed from 0.
    res.write(part.subarray(0, Math.max(0, drop.after - start)), () => setTimeout(() => res.socket?.end(), 300));
    return;
  }
  const stall = faults.stall?.get(file);
  if (stall !== undefined) {
    res.write(part.subarray(0, Math.max(0, stall - start)));
    return;
  }
  res.end(part);
}

function error(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message }).end(JSON.stringify({ error: message }));
}

/** `renames`: old name -> new name, answered with a relative 307 as the Hub does for a renamed repo. */
export async function startHub(repos: Map<string, HubRepo>, faults: Faults = {}, renames = new Map<string, string>()): Promise<HubServer> {
  const log: Logged[] = [];
  const blobs = new Map<string, { file: string; body: Buffer }>();
  for (const r of repos.values()) for (const [file, body] of r.files) if (isLfs(file)) blobs.set(sha256(body), { file, body });
  const sockets = new Set<import('node:net').Socket>();
  const note = (server: 'hub' | 'cdn', req: http.IncomingMessage) =>
    log.push({ server, path: decodeURI(req.url ?? ''), range: req.headers.range, authorization: req.headers.authorization });

  const cdn = http.createServer((req, res) => {
    note('cdn', req);
    const m = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url ?? '');
    const blob = m === null ? undefined : blobs.get(m[1]!);
    if (blob === undefined) return error(res, 404, 'EntryNotFound', 'no such blob');
    // The CDN's own ETag is not the file's sha256 (S3's is an MD5 or a multipart hash).
    sendBytes(req, res, blob.file, blob.body, `cdn-${m![1]!.slice(0, 8)}`, faults);
  });
  const cdnUrl = await listen(cdn);

  const hub = http.createServer((req, res) => {
    note('hub', req);
    const url = new URL(req.url ?? '/', 'http://x');
    const authorized = req.headers.authorization === `Bearer ${TOKEN}`;
    const info = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = decodeURIComponent((info ?? resolve)?.[1] ?? '');
    const repo = repos.get(repoId);
    const renamed = renames.get(repoId);
    if (renamed !== undefined) {
      res.writeHead(307, { location: (req.url ?? '').replace(`/${repoId}/`, `/${renamed}/`) }).end();
      return;
    }
    if (repo === undefined) return error(res, authorized ? 404 : 401, 'RepoNotFound', 'Repository not found');
    const rev = decodeURIComponent((info ?? resolve)![2]!);
    if (rev !== repo.commit && rev !== 'main' && !(repo.refs ?? []).includes(rev)) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    if (info !== null) {
      const blobsParam = url.searchParams.get('blobs') === 'true';
      const siblings = [...repo.files].map(([file, body]) => ({
        rfilename: file,
        ...(blobsParam ? { size: body.byteLength, blobId: gitBlobId(body) } : {}),
        ...(blobsParam && isLfs(file) ? { lfs: { sha256: sha256(body), size: body.byteLength, pointerSize: 134 } } : {}),
      }));
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ id: repoId, sha: repo.commit, gated: repo.gated === true ? 'manual' : false, siblings }));
      return;
    }
    const file = decodeURIComponent(resolve![3]!);
    const body = repo.files.get(file);
    if (body === undefined) return error(res, 404, 'EntryNotFound', `${file} does not exist`);
    if (repo.gated === true && !authorized) return error(res, authorized ? 403 : 401, 'GatedRepo', 'Access to this model is restricted');
    const wrong = faults.wrongEtag?.has(file) === true;
    if (isLfs(file)) {
      const sum = sha256(body);
      res
        .writeHead(302, {
          location: `${cdnUrl}/cdn/${sum}`,
          'x-linked-etag': `"${wrong ? sha256(Buffer.from('other')) : sum}"`,
          'x-linked-size': String(body.byteLength),
          'x-repo-commit': repo.commit,
        })
        .end();
      return;
    }
    res.setHeader('x-repo-commit', repo.commit);
    sendBytes(req, res, file, body, wrong ? gitBlobId(Buffer.from('other')) : gitBlobId(body), faults);
  });
  const endpoint = await listen(hub);
  for (const s of [hub, cdn]) s.on('connection', (c) => (sockets.add(c), c.on('close', () => sockets.delete(c))));
  return {
    endpoint,
    cdn: cdnUrl,
    log,
    faults,
    close: async () => {
      for (const c of sockets) c.destroy();
      await Promise.all([hub, cdn].map((s) => new Promise((r) => s.close(r))));
    },
  };
}
