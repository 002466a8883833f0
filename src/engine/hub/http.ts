/**
 * HTTP for the Hub on Node's own clients: redirects followed by hand (a relative one keeps the
 * Authorization header; one to another host, the CDN, drops it, as huggingface_hub and requests do),
 * an idle timeout, and the Hub's error replies turned into one line a user can act on.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { UnicornError } from '../errors.js';

/** The Hub could not be reached, or the connection broke: worth running again. */
export class HubNetworkError extends UnicornError {}

/** The Hub answered with an error status (the message says what it means for this model). */
export class HubHttpError extends UnicornError {
  readonly status: number;
  constructor(status: number, message: string, options?: { hint?: string }) {
    super(message, options);
    this.status = status;
  }
}

export interface HubRequest {
  readonly method?: 'GET' | 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  readonly token?: string | undefined;
  /** Milliseconds without a byte before the request is given up (huggingface_hub: 10 s). */
  readonly idleTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface HubResponse {
  readonly res: http.IncomingMessage;
  /**
   * The headers of the endpoint's own last response (X-Linked-Etag, X-Repo-Commit): after the relative
   * redirects it makes itself (a renamed repo), before the redirect to another host (the CDN).
   */
  readonly first: http.IncomingHttpHeaders;
  readonly url: string;
}

const MAX_REDIRECTS = 10;
const USER_AGENT = `unicorn/0.1; node/${process.versions.node}`;

function once(url: URL, method: string, headers: Record<string, string>, o: HubRequest): Promise<http.IncomingMessage> {
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method, headers, ...(o.signal === undefined ? {} : { signal: o.signal }) }, resolve);
    req.setTimeout(o.idleTimeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error('no reply'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

export function networkProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the host name does not resolve (no network?)';
  if (code === 'ECONNREFUSED') return 'the connection was refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'the connection was reset';
  if (code === 'ETIMEDOUT') return 'no reply in time';
  if (code === 'ABORT_ERR') return 'interrupted';
  return e instanceof Error ? e.message : String(e);
}

/** Sends a request and follows redirects; the response returned is the first that is not a redirect. */
export async function hubRequest(start: string, o: HubRequest = {}): Promise<HubResponse> {
  let url = new URL(start);
  const origin = url.origin;
  const method = o.method ?? 'GET';
  let first: http.IncomingHttpHeaders | undefined;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...(o.headers ?? {}) };
    // The token goes to the endpoint only: never to the CDN host a file redirects to.
    if (o.token !== undefined && url.origin === origin) headers['authorization'] = `Bearer ${o.token}`;
    let res: http.IncomingMessage;
    try {
      res = await once(url, method, headers, o);
    } catch (e) {
      throw new HubNetworkError(`could not reach ${url.origin}: ${networkProblem(e)}`, {
        hint: 'check the network (or HF_ENDPOINT) and run again; HF_HUB_OFFLINE=1 uses only what is cached',
        cause: e,
      });
    }
    if (url.origin === origin) first = res.headers;
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw new HubNetworkError(`${start}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url);
      continue;
    }
    return { res, first: first ?? res.headers, url: url.toString() };
  }
}

/** Reads a (small) body into a string, at most `max` bytes. */
export async function readBody(res: http.IncomingMessage, max = 64 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).byteLength;
    if (n > max) {
      res.destroy();
      throw new HubNetworkError(`the reply from ${res.url ?? 'the Hub'} is larger than ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface ErrorContext {
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
  readonly endpoint: string;
  readonly authenticated: boolean;
}

/**
 * The error for a reply that is not a success, from its status and the Hub's X-Error-Code
 * (GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound). The Hub answers 401 for a repo that
 * does not exist when no token is sent (a private repo looks the same), so both are said.
 */
export async function hubStatusError(res: http.IncomingMessage, c: ErrorContext): Promise<HubHttpError> {
  const status = res.statusCode ?? 0;
  const code = String(res.headers['x-error-code'] ?? '');
  let detail = String(res.headers['x-error-message'] ?? '');
  try {
    const body = await readBody(res, 64 << 10);
    if (detail === '') detail = String((JSON.parse(body) as { error?: unknown }).error ?? '');
  } catch {
    // no JSON body: the status says enough
  }
  const page = `${c.endpoint}/${c.repo}`;
  const what = c.file === undefined ? c.repo : `${c.repo}: ${c.file}`;
  const tokenHint = 'set HF_TOKEN (a read token from https://huggingface.co/settings/tokens) or run `huggingface-cli login`';
  if (code === 'GatedRepo' || (status === 403 && code !== 'RepoNotFound'))
    return new HubHttpError(status, `${c.repo} is a gated model: its licence must be accepted on its Hub page before it can be downloaded (HTTP ${status})`, {
      hint: `accept the licence at ${page}, then ${c.authenticated ? 'check that HF_TOKEN belongs to that account' : tokenHint}`,
    });
  if (code === 'RevisionNotFound' || (status === 404 && code === '' && c.file === undefined && c.revision !== 'main'))
    return new HubHttpError(status, `${c.repo} has no revision ${JSON.stringify(c.revision)} (HTTP ${status})`, {
      hint: `check the branch, tag or commit on ${page}/tree/main, or leave out @${c.revision}`,
    });
  if (code === 'EntryNotFound') return new HubHttpError(status, `${what} does not exist at revision ${c.revision} (HTTP ${status})`);
  if (status === 401 || code === 'RepoNotFound')
    return new HubHttpError(
      status,
      c.authenticated
        ? `${c.repo} does not exist on ${c.endpoint}, or the token has no access to it (HTTP ${status})`
        : `${c.repo} does not exist on ${c.endpoint}, or it is private or gated and needs a token (HTTP ${status})`,
      {
        hint: c.authenticated
          ? `check the name on ${c.endpoint}/models`
          : `check the name; if it is gated or private, accept its licence at ${page} and ${tokenHint}`,
      },
    );
  if (status === 404) return new HubHttpError(status, `${what} does not exist on ${c.endpoint} (HTTP 404)`, { hint: `check the name on ${c.endpoint}/models` });
  if (status === 429)
    return new HubHttpError(status, `${c.endpoint} is rate-limiting requests (HTTP 429)`, { hint: 'wait a minute and run again; a token raises the limits' });
  return new HubHttpError(status, `${c.endpoint} answered HTTP ${status} for ${what}${detail === '' ? '' : `: ${detail.slice(0, 200)}`}`, {
    hint: status >= 500 ? 'the Hub is having trouble: run again later' : undefined,
  });
}
