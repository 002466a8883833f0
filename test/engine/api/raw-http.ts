/**
 * Raw HTTP/1.1 over a socket, for the tests that send what no client library would (broken request
 * targets, duplicate headers, lying lengths, bodies cut short): one exchange, its first final
 * response parsed (1xx interim responses skipped, Content-Length or chunked bodies read whole), and
 * whether the connection failed under the client (EPIPE, ECONNRESET) while it was sending.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';

export interface RawResponse {
  /** 0 when no response came. */
  readonly status: number;
  /** Header names lowercased; a repeated header's values joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The socket error the client saw (while sending or reading), if any. */
  readonly error: string | null;
  /** 1xx responses before the final one (e.g. 100 for Expect: 100-continue). */
  readonly interim: number[];
}

export interface ExchangeOptions {
  /** Give up (and report what came) after this long. */
  readonly timeoutMs?: number;
  /** Written after the request, once the first interim (100) response arrives. */
  readonly afterContinue?: string | Buffer;
  /** Hang up this long after writing, without waiting for a response. */
  readonly hangUpAfterMs?: number;
  /** The request is written in pieces of this many bytes, each after the last was flushed. */
  readonly pieceBytes?: number;
  /** The response has no body whatever its headers say (the answer to HEAD). */
  readonly head?: boolean;
  /** The address to connect to (default 127.0.0.1). */
  readonly address?: string;
}

/** Parses as much of a response as has arrived; null while the first final response is incomplete. */
function parse(buf: Buffer, ended: boolean, noBody = false): Omit<RawResponse, 'error'> | null {
  const interim: number[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) return ended ? { status: 0, headers: {}, body: buf.subarray(at).toString('utf8'), interim } : null;
    const head = buf.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    at = end + 4;
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    const rest = buf.subarray(at);
    if (noBody) return { status, headers, body: '', interim };
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (rest.length < n && !ended) return null;
      return { status, headers, body: rest.subarray(0, n).toString('utf8'), interim };
    }
    if ((headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      let p = 0;
      for (;;) {
        const nl = rest.indexOf('\r\n', p);
        if (nl < 0) return ended ? { status, headers, body: Buffer.concat(parts).toString('utf8'), interim } : null;
        const size = parseInt(rest.subarray(p, nl).toString('latin1'), 16);
        if (size === 0) return { status, headers, body: Buffer.concat(parts).toString('utf8'), interim };
        if (rest.length < nl + 2 + size + 2) return ended ? { status, headers, body: Buffer.concat(parts).toString('utf8'), interim } : null;
        parts.push(rest.subarray(nl + 2, nl + 2 + size));
        p = nl + 2 + size + 2;
      }
    }
    return ended ? { status, headers, body: rest.toString('utf8'), interim } : null;
  }
}

/** Sends `request` on a new connection and reads the first final response. */
export function exchange(port: number, request: string | Buffer, o: ExchangeOptions = {}): Promise<RawResponse> {
  return new Promise((resolve) => {
    const s = net.connect(port, o.address ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let settled = false;
    let continued = false;
    const finish = (ended: boolean) => {
      if (settled) return;
      const r = parse(Buffer.concat(chunks), ended, o.head === true);
      if (r === null) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ ...r, error });
    };
    const timer = setTimeout(() => finish(true), o.timeoutMs ?? 10_000);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (o.afterContinue !== undefined && !continued && /^HTTP\/1\.1 100/.test(Buffer.concat(chunks).toString('latin1'))) {
        continued = true;
        s.write(o.afterContinue);
      }
      finish(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.on('close', () => finish(true));
    const data = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
    const piece = o.pieceBytes ?? data.length;
    let off = 0;
    const pump = () => {
      while (off < data.length && !s.destroyed) {
        const part = data.subarray(off, off + piece);
        off += part.length;
        if (!s.write(part)) {
          s.once('drain', pump);
          return;
        }
      }
      if (o.hangUpAfterMs !== undefined)
        setTimeout(() => {
          s.destroy();
          settled = true;
          clearTimeout(timer);
          resolve({ status: 0, headers: {}, body: '', error, interim: [] });
        }, o.hangUpAfterMs);
    };
    pump();
  });
}

/** A request with the given target, headers and body (Content-Length added when there is a body and none is given). */
export function request(method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Buffer {
  const h = { Host: '127.0.0.1', ...headers };
  const b = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  if (body !== undefined && !Object.keys(h).some((k) => /^(content-length|transfer-encoding)$/i.test(k)))
    Object.assign(h, { 'Content-Length': String(b.length) });
  const lines = Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from(`${method} ${target} HTTP/1.1\r\n${lines}\r\n`, 'latin1'), b]);
}

/** Asserts that a response body is an OpenAI error object, and returns it. */
export function errorObject(r: RawResponse, what = ''): { message: string; type: string; param: string | null; code: string | null } {
  let v: unknown;
  try {
    v = JSON.parse(r.body);
  } catch {
    assert.fail(`${what}: status ${r.status}, the body is not JSON: ${JSON.stringify(r.body.slice(0, 200))}`);
  }
  const e = (v as { error?: Record<string, unknown> }).error;
  assert.ok(e !== undefined && typeof e === 'object', `${what}: no error object in ${r.body.slice(0, 200)}`);
  assert.equal(typeof e['message'], 'string', what);
  assert.ok(e['type'] === 'invalid_request_error' || e['type'] === 'server_error', `${what}: type ${String(e['type'])}`);
  assert.ok(e['param'] === null || typeof e['param'] === 'string', what);
  assert.ok(e['code'] === null || typeof e['code'] === 'string', what);
  return e as { message: string; type: string; param: string | null; code: string | null };
}
