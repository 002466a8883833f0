/**
 * The OpenAI-compatible HTTP server over one loaded model (in this process, or a resident server's).
 * node:http, no framework: routing, bearer-token check, bounded JSON bodies, a first-come queue in
 * front of the engine (one generation at a time: they share the GPU and the KV cache, so a chat that
 * continues the previous request's conversation prefills only its new turn), server-sent events.
 * Every failure of a request is answered with an OpenAI error object and never reaches the process:
 * nothing a client sends (request target, headers, body, hanging up at any point) can end it.
 *
 * What is checked before a request reaches a route, in this order (docs/serve.md has the whole model):
 * the request target (origin-form or absolute-form, else 400), the Host header (a name of this server,
 * else 403: a page served under another name that DNS-rebinds to this address cannot read answers),
 * the Origin header (a browser's request is answered only for origins --cors allows, else 403), then
 * on /v1 the API key, and on POST routes the media type (application/json, else 415: browsers send a
 * text/plain or form POST cross-origin without a preflight) and the body's size (413).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import { UnicornError } from '../errors.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import { type SamplingOptions, resolveSampling } from '../generate/sampler.js';
import { RemoteError } from '../server/client.js';
import { escapeControl } from '../text/escape.js';
import {
  ApiError,
  type ParsedRequest,
  type ResponseHead,
  chunk,
  finishReason,
  fullResponse,
  newId,
  parseChatRequest,
  parseCompletionRequest,
  usageChunk,
} from './openai.js';

/** What a backend's prompt bound looks at: the prompt, or the conversation. */
export type PromptShape = Pick<CompletionRequest, 'prompt' | 'messages'>;

/** The model behind the API: completions one at a time, and what /health reports. */
export interface ApiBackend {
  /** The id clients name in `model` (and /v1/models lists). */
  readonly modelId: string;
  readonly ctx: number;
  readonly defaults: Partial<SamplingOptions>;
  /** Whether the model has a chat template (else /v1/chat/completions is refused). */
  readonly chat: boolean;
  complete(req: CompletionRequest, onText: (t: string) => void, shouldStop: () => boolean): Promise<CompletionResult>;
  status(): Promise<{ device: string; contextUsed: number; gpuBytes: number | null; resident: boolean }>;
  /**
   * The fewest tokens the prompt can encode to, found without tokenizing it (0 when not known): a
   * prompt whose bound is past the context is refused at once, before it is queued or tokenized.
   */
  fewestTokens?(p: PromptShape): number;
}

export interface ApiOptions {
  readonly host: string;
  readonly port: number;
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** Largest request body in bytes (413 above it). */
  readonly maxBodyBytes: number;
  /** Most requests waiting behind the running one (503 above it). */
  readonly maxQueue: number;
  /**
   * Origins whose browser requests are answered, comma-separated, or * for any (and their
   * Access-Control-Allow-Origin). Unset: a request that carries an Origin header is refused.
   */
  readonly cors?: string;
  /**
   * Host header names accepted besides IP addresses, localhost and names under .localhost, .local
   * and .internal, this machine's hostname and the address listened on; '*' accepts any name.
   */
  readonly allowedHosts?: readonly string[];
  readonly version: string;
  /** One line per request (method, path, status, tokens, seconds); outside text in it is escaped. */
  readonly log?: (line: string) => void;
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  /** Requests running and waiting. */
  queue(): { active: number; waiting: number };
  close(): Promise<void>;
}

interface Job {
  readonly run: () => Promise<void>;
  readonly gone: () => boolean;
}

/** First come, first served; a job whose client left while waiting is dropped unrun. */
class Queue {
  private readonly waiting: Job[] = [];
  active = 0;

  constructor(private readonly limit: number) {}

  get length(): number {
    return this.waiting.filter((j) => !j.gone()).length;
  }

  /** False when the queue is full. */
  push(job: Job): boolean {
    if (this.length >= this.limit) return false;
    this.waiting.push(job);
    void this.next();
    return true;
  }

  private async next(): Promise<void> {
    if (this.active > 0) return;
    let job = this.waiting.shift();
    while (job !== undefined && job.gone()) job = this.waiting.shift();
    if (job === undefined) return;
    this.active = 1;
    try {
      await job.run();
    } catch {
      // A job answers its own failures; nothing may stop the queue (or become an unhandled rejection).
    } finally {
      this.active = 0;
      void this.next();
    }
  }
}

/**
 * The status and error object for anything a request's handling threw. `promptParam` is the field a
 * prompt past the context is blamed on: 'messages' for chat, 'prompt' for completions.
 */
export function toApiError(e: unknown, promptParam = 'messages'): ApiError {
  if (e instanceof ApiError) return e;
  const name = e instanceof RemoteError ? e.remoteName : e instanceof Error ? e.name : '';
  const message = e instanceof Error ? e.message : String(e);
  if (name === 'ContextFullError') return new ApiError(400, message, promptParam, 'context_length_exceeded');
  if (name === 'ChatTemplateError' || name === 'RangeError') return new ApiError(400, message, null, 'invalid_value');
  if (e instanceof UnicornError) return new ApiError(500, `${message}${e.hint === undefined ? '' : ` (${e.hint})`}`, null, null);
  return new ApiError(500, `internal error: ${message}`);
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether an address (or name) to listen on is this machine only: all of 127.0.0.0/8, ::1 (and ::ffff:127.x), localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase()
    .replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const v = net.isIP(h);
  return v !== 0 && LOOPBACK.check(h, v === 4 ? 'ipv4' : 'ipv6');
}

/** Outside text quoted in an error message or a log line: control characters escaped, cut short. */
const quote = (s: string) => escapeControl(s, 100);

const badTarget = (why: string) => new ApiError(400, `malformed request target: ${why}`, null, 'invalid_request_target');

// A path as RFC 3986 allows it: unreserved, percent-encoded, sub-delims, ':', '@' and '/'.
const PATH = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;

/**
 * The path of a request target (origin-form "/p?q", absolute-form "http://host/p?q", or "*"), and
 * for absolute-form its authority (which is checked as the Host header is). Anything else, and a
 * path with characters a path cannot hold or a broken %-escape, is a 400.
 */
export function requestPath(target: string): { path: string; authority?: string } {
  if (target === '*') return { path: '*' };
  if (target.startsWith('/')) {
    const end = target.search(/[?#]/);
    const p = end < 0 ? target : target.slice(0, end);
    if (!PATH.test(p)) throw badTarget(/%(?![0-9A-Fa-f]{2})/.test(p) ? 'a % not followed by two hex digits' : 'characters a path cannot hold');
    return { path: p };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(target)) {
    let u: URL;
    try {
      u = new URL(target);
    } catch {
      throw badTarget('not a URL');
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.host === '') throw badTarget('not an http URL');
    return { path: u.pathname, authority: u.host };
  }
  throw badTarget('neither a path nor an http URL');
}

/** The host name of a Host header value ("name", "name:port", "[v6]:port"), lowercased; null when malformed. */
export function hostName(value: string): string | null {
  const v = value.trim().toLowerCase();
  let name: string;
  let rest: string;
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0) return null;
    name = v.slice(1, end);
    rest = v.slice(end + 1);
    if (net.isIPv6(name) === false) return null;
  } else {
    const colon = v.indexOf(':');
    if (colon !== v.lastIndexOf(':')) return null;
    name = colon < 0 ? v : v.slice(0, colon);
    rest = colon < 0 ? '' : v.slice(colon);
    if (!/^(?:[a-z0-9\-._~!$&'()*+,;=]|%[0-9a-f]{2})+$/.test(name)) return null;
  }
  if (rest !== '' && !(/^:\d{1,5}$/.test(rest) && Number(rest.slice(1)) <= 65535)) return null;
  return name.replace(/\.$/, '');
}

/** How far past the limit the rest of an oversized body is read (so the client reads the 413) before the connection is closed. */
const DRAIN_BYTES = 64 * 1024 * 1024;

export function startApi(backend: ApiBackend, o: ApiOptions): Promise<ApiServer> {
  const queue = new Queue(o.maxQueue);
  const fingerprint = `fp_unicorn_${o.version}`;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const keyDigest = o.apiKey === undefined ? undefined : digest(o.apiKey);
  const log = (line: string) => o.log?.(escapeControl(line, 2000));

  const origins =
    o.cors === undefined
      ? []
      : o.cors
          .split(',')
          .map((x) => x.trim().toLowerCase())
          .filter((x) => x !== '');
  const anyOrigin = origins.includes('*');
  const extraHosts = new Set((o.allowedHosts ?? []).map((h) => h.trim().toLowerCase().replace(/\.$/, '')).filter((h) => h !== ''));
  const machine = os.hostname().toLowerCase();
  const bound = o.host.toLowerCase().replace(/^\[(.*)\]$/, '$1');

  /** Requests whose `Expect: 100-continue` was refused (body over the limit): the client sends no body, so the connection ends with the answer. */
  const noContinue = new WeakSet<http.IncomingMessage>();

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    const close = noContinue.has(res.req) ? { Connection: 'close' } : {};
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers, ...close });
    res.end(text);
  };
  const fail = (res: http.ServerResponse, e: ApiError, headers: Record<string, string> = {}) => send(res, e.status, e.body(), headers);

  /** The key, as "Authorization: Bearer <key>" (the scheme in any case, RFC 7235), compared in constant time (digests: no length leaks either). */
  const authorized = (req: http.IncomingMessage): boolean => {
    if (keyDigest === undefined) return true;
    const m = /^bearer[ \t]+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), keyDigest);
  };

  /**
   * Whether a Host name is this server's, not one that a page of another site could have made point
   * here (DNS rebinding needs a name the attacker's DNS answers for): an IP address, localhost, a
   * name under .localhost, .local (mDNS) or .internal (private use, e.g. host.docker.internal), this
   * machine's hostname, the address listened on, or one allowed by --allowed-hosts (as Ollama does).
   */
  const hostAllowed = (name: string): boolean =>
    extraHosts.has('*') ||
    extraHosts.has(name) ||
    net.isIP(name) !== 0 ||
    name === 'localhost' ||
    /\.(localhost|local|internal)$/.test(name) ||
    name === machine ||
    name === bound;

  const checkHost = (req: http.IncomingMessage, authority: string | undefined) => {
    const count = req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'host').length;
    if (count > 1) throw new ApiError(400, 'the request has more than one Host header', null, 'invalid_host');
    const value = req.headers.host;
    if (value === undefined || value === '') {
      if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && authority === undefined) return;
      if (value === undefined) throw new ApiError(400, 'the request has no Host header (HTTP/1.1 requires one)', null, 'invalid_host');
    }
    for (const v of [value ?? '', ...(authority === undefined ? [] : [authority])]) {
      const name = hostName(v);
      if (name === null) throw new ApiError(400, `malformed Host: '${quote(v)}'`, null, 'invalid_host');
      if (!hostAllowed(name)) {
        throw new ApiError(
          403,
          `the Host '${quote(name)}' is not a name of this server: clients use localhost or an IP address (a web page elsewhere could make its own name point here); ` +
            'allow more names with unicorn serve --allowed-hosts or UNICORN_ALLOWED_HOSTS',
          null,
          'host_not_allowed',
        );
      }
    }
  };

  /** The CORS headers for a request whose Origin passed (none without --cors). */
  const corsHeaders = (origin: string | undefined): Record<string, string> => {
    if (o.cors === undefined) return {};
    if (anyOrigin) return { 'Access-Control-Allow-Origin': '*' };
    if (origin !== undefined) return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
    return origins.length === 1 ? { 'Access-Control-Allow-Origin': o.cors.trim(), Vary: 'Origin' } : { Vary: 'Origin' };
  };

  /** A browser's request (it has an Origin) is answered only for an origin --cors allows. */
  const checkOrigin = (req: http.IncomingMessage): Record<string, string> => {
    const origin = req.headers.origin;
    if (origin === undefined) return corsHeaders(undefined);
    if (anyOrigin || origins.includes(origin.toLowerCase())) return corsHeaders(origin);
    throw new ApiError(
      403,
      `requests from web pages are refused unless their origin is allowed: this one comes from '${quote(origin)}' (unicorn serve --cors <origin>)`,
      null,
      'origin_not_allowed',
    );
  };

  const tooLarge = (message: string, close: boolean) => Object.assign(new ApiError(413, message, null, 'request_too_large'), { close });
  const clientLeft = () => Object.assign(new ApiError(400, 'the client left before sending the whole body', null, 'client_closed'), { left: true });

  /**
   * Reads the body as JSON within the size limit. A body over it is still read to its end (and
   * dropped) before the 413 is sent, up to DRAIN_BYTES more: a server that answers and closes while
   * the client is still sending resets the connection, and the client sees that instead of the 413.
   */
  const readJson = (req: http.IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const declared = req.headers['content-length'] === undefined ? NaN : Number(req.headers['content-length']);
      const over = (what: string) => `the request body is ${what}; the limit is ${o.maxBodyBytes} bytes (unicorn serve --max-body)`;
      if (declared > o.maxBodyBytes && (noContinue.has(req) || declared > o.maxBodyBytes + DRAIN_BYTES)) {
        reject(tooLarge(over(`${declared} bytes`), true));
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      let tooBig = declared > o.maxBodyBytes;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > o.maxBodyBytes) {
          tooBig = true;
          parts.length = 0;
          if (size > o.maxBodyBytes + DRAIN_BYTES) {
            reject(tooLarge(over(`over ${o.maxBodyBytes + DRAIN_BYTES} bytes`), true));
            req.socket.destroy();
          }
          return;
        }
        parts.push(c);
      });
      req.on('error', () => reject(clientLeft()));
      req.on('close', () => {
        if (!req.complete) reject(clientLeft());
      });
      req.on('end', () => {
        if (tooBig) {
          reject(tooLarge(over(Number.isFinite(declared) ? `${declared} bytes` : `over ${o.maxBodyBytes} bytes`), false));
          return;
        }
        const text = Buffer.concat(parts).toString('utf8');
        if (text.trim() === '') {
          reject(new ApiError(400, 'the request has no body: send a JSON object'));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(new ApiError(400, `the request body is not valid JSON (${e instanceof Error ? e.message : String(e)})`, null, 'invalid_json'));
        }
      });
    });

  const modelObject = () => ({ id: backend.modelId, object: 'model', created: startedAt, owned_by: 'unicorn', meta: { context_length: backend.ctx } });
  const startedAt = Math.floor(Date.now() / 1000);

  /** Refuses a prompt that cannot fit the context, before it is queued or tokenized. */
  const checkLength = (parsed: ParsedRequest, param: string) => {
    const p = parsed.completion;
    const ctx = backend.ctx;
    if (typeof p.prompt !== 'string' && p.prompt.length > ctx) {
      throw new ApiError(400, `the prompt is ${p.prompt.length} tokens, longer than the context of ${ctx}`, param, 'context_length_exceeded');
    }
    const least = backend.fewestTokens?.(p) ?? 0;
    if (least > ctx) throw new ApiError(400, `the prompt is at least ${least} tokens, longer than the context of ${ctx}`, param, 'context_length_exceeded');
  };

  /** Runs one completion request: queued, then streamed or answered whole. */
  const generate = (res: http.ServerResponse, parsed: ParsedRequest, cors: Record<string, string>, done: (line: string) => void) => {
    if (parsed.model !== undefined && parsed.model !== backend.modelId) {
      throw new ApiError(
        404,
        `The model '${quote(parsed.model)}' does not exist: this server serves '${backend.modelId}' (GET /v1/models)`,
        'model',
        'model_not_found',
      );
    }
    if (parsed.endpoint === 'chat' && !backend.chat) {
      throw new ApiError(400, `'${backend.modelId}' has no chat template: use /v1/completions with a plain prompt`, 'messages', 'no_chat_template');
    }
    const promptParam = parsed.endpoint === 'chat' ? 'messages' : 'prompt';
    checkLength(parsed, promptParam);
    const sampling = resolveSampling(parsed.sampling, backend.defaults);
    const completion: CompletionRequest = { ...parsed.completion, sampling, maxTokens: parsed.completion.maxTokens ?? backend.ctx };
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const head: ResponseHead = { id: newId(parsed.endpoint), created: Math.floor(Date.now() / 1000), model: backend.modelId, system_fingerprint: fingerprint };
    const echoed = parsed.echo && typeof parsed.completion.prompt === 'string' ? parsed.completion.prompt : '';
    const job: Job = {
      gone: () => gone,
      run: async () => {
        let started = false;
        const event = (v: unknown) => {
          if (!gone && !res.destroyed) res.write(`data: ${JSON.stringify(v)}\n\n`);
        };
        const open = () => {
          if (started) return;
          started = true;
          res.writeHead(200, {
            'Content-Type': 'text/event-stream; charset=utf-8',
            'Cache-Control': 'no-cache',
            Connection: 'keep-alive',
            'X-Accel-Buffering': 'no',
            ...cors,
          });
          if (parsed.endpoint === 'chat') event(chunk(parsed, head, { first: true, text: '' }));
          if (echoed !== '') event(chunk(parsed, head, { text: echoed }));
        };
        try {
          const r = await backend.complete(
            completion,
            (text) => {
              if (!parsed.stream || gone) return;
              open();
              event(chunk(parsed, head, { text }));
            },
            () => gone,
          );
          if (gone) {
            done(`client left · ${r.tokens.length} tokens`);
            return;
          }
          if (parsed.stream) {
            open();
            event(chunk(parsed, head, { finish: finishReason(r.finish) }));
            if (parsed.includeUsage) event(usageChunk(parsed, head, r));
            res.end('data: [DONE]\n\n');
          } else {
            send(res, 200, fullResponse(parsed, head, r, echoed), cors);
          }
          done(`200 · ${r.promptTokens} + ${r.tokens.length} tokens${r.decodeTokensPerSecond === null ? '' : ` · ${r.decodeTokensPerSecond} tok/s`}`);
        } catch (e) {
          const err = toApiError(e, promptParam);
          if (started) {
            event(err.body());
            if (!res.destroyed) res.end('data: [DONE]\n\n');
          } else {
            fail(res, err, cors);
          }
          done(`${err.status} · ${err.message}`);
        }
      },
    };
    if (!queue.push(job))
      throw new ApiError(
        503,
        `the server is busy: ${o.maxQueue} requests are already waiting (unicorn serve --max-queue)`,
        null,
        'server_busy',
        'server_error',
      );
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const t0 = performance.now();
    let label = `${req.method ?? '?'} ${quote(req.url ?? '')}`;
    const done = (what: string) => log(`${label} ${what} · ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    // Writes to a connection the client has left are dropped, never thrown.
    res.on('error', () => {});
    let cors: Record<string, string> = {};
    try {
      const target = requestPath(req.url ?? '');
      label = `${req.method} ${quote(target.path)}`;
      checkHost(req, target.authority);
      cors = checkOrigin(req);
      // Clients configured with or without the /v1 prefix reach the same routes.
      const route = target.path.replace(/\/+$/, '').replace(/^\/v1(?=\/|$)/, '') || '/';
      if (req.method === 'OPTIONS' && o.cors !== undefined) {
        // The headers an allowed page asks to send (the openai package adds x-stainless-* ones), when they are a plain list of names.
        const asked = req.headers['access-control-request-headers'] ?? '';
        const headers = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:[ \t]*,[ \t]*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/.test(asked) ? asked : 'Authorization, Content-Type';
        res.writeHead(204, {
          ...cors,
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
          'Access-Control-Allow-Headers': headers,
          'Access-Control-Max-Age': '86400',
        });
        res.end();
        return;
      }
      const allow = (methods: string) => {
        if (!methods.split(', ').includes(req.method ?? '')) {
          throw Object.assign(new ApiError(405, `${req.method} is not allowed on ${quote(target.path)}; use ${methods}`, null, 'method_not_allowed'), {
            allow: methods,
          });
        }
      };
      if (route === '/health') {
        allow('GET');
        let s;
        try {
          s = await backend.status();
        } catch (e) {
          const err = toApiError(e);
          send(res, 503, { status: 'unavailable', model: backend.modelId, error: err.body().error }, cors);
          done(`503 · ${err.message}`);
          return;
        }
        send(
          res,
          200,
          {
            status: 'ok',
            model: backend.modelId,
            device: s.device,
            resident: s.resident,
            context_length: backend.ctx,
            context_used: s.contextUsed,
            gpu_bytes: s.gpuBytes,
            queue: { active: queue.active, waiting: queue.length },
          },
          cors,
        );
        done('200');
        return;
      }
      if (!authorized(req)) {
        throw new ApiError(
          401,
          'Incorrect API key provided: send the key given to unicorn serve --api-key as "Authorization: Bearer <key>"',
          null,
          'invalid_api_key',
        );
      }
      if (route === '/models') {
        allow('GET');
        send(res, 200, { object: 'list', data: [modelObject()] }, cors);
        done('200');
        return;
      }
      if (route.startsWith('/models/')) {
        allow('GET');
        let id: string;
        try {
          id = decodeURIComponent(route.slice('/models/'.length));
        } catch {
          throw badTarget('a %-escape that is not UTF-8');
        }
        if (id !== backend.modelId) throw new ApiError(404, `The model '${quote(id)}' does not exist`, 'model', 'model_not_found');
        send(res, 200, modelObject(), cors);
        done('200');
        return;
      }
      if (route === '/chat/completions' || route === '/completions') {
        allow('POST');
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== 'application/json') {
          throw new ApiError(
            415,
            `the request body must be JSON sent as "Content-Type: application/json"${type === '' ? '' : `, not '${quote(type)}'`}`,
            null,
            'unsupported_media_type',
          );
        }
        const body = await readJson(req);
        const parsed = route === '/completions' ? parseCompletionRequest(body) : parseChatRequest(body);
        generate(res, parsed, cors, done);
        return;
      }
      throw new ApiError(
        404,
        `there is no ${label}: the routes are GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health`,
        null,
        'not_found',
      );
    } catch (e) {
      const err = toApiError(e);
      const allowHeader = (e as { allow?: string }).allow;
      const close = (e as { close?: boolean }).close === true;
      fail(res, err, { ...cors, ...(close ? { Connection: 'close' } : {}), ...(allowHeader === undefined ? {} : { Allow: allowHeader }) });
      done((e as { left?: boolean }).left === true ? 'client left before sending the whole body' : `${err.status} · ${err.message}`);
    }
  };

  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    // handle() answers its own failures; one that escapes it is answered and logged here, never left unhandled.
    handle(req, res).catch((e: unknown) => {
      const err = toApiError(e);
      fail(res, err);
      log(`${req.method ?? '?'} ${quote(req.url ?? '')} ${err.status} · ${err.message}`);
    });
  });
  // Expect: 100-continue with a body over the limit: the 413 at once, and the client keeps its body.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (Number(req.headers['content-length']) > o.maxBodyBytes) noContinue.add(req);
    else res.writeContinue();
    server.emit('request', req, res);
  });
  /** An answer written on the socket itself (there is no response object), then the connection closed. */
  const rawAnswer = (socket: net.Socket, status: number, reason: string, e: ApiError, headers = '') => {
    const body = JSON.stringify(e.body());
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
    );
  };
  // An Expect other than 100-continue (Node would answer 417 with no body).
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const err = new ApiError(417, `"Expect: ${quote(req.headers.expect ?? '')}" is not supported (only 100-continue is)`, null, 'expectation_failed');
    fail(res, err, { Connection: 'close' });
    log(`${req.method ?? '?'} ${quote(req.url ?? '')} 417 · ${err.message}`);
  });
  // Malformed HTTP (and timeouts, oversized headers): answered with an error object, then the
  // connection closed; nothing is written where a response has already begun.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    const begun = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (!socket.writable || begun || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_HEADER_OVERFLOW')
      rawAnswer(socket, 431, 'Request Header Fields Too Large', new ApiError(431, 'the request headers are too large', null, 'headers_too_large'));
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
      rawAnswer(socket, 408, 'Request Timeout', new ApiError(408, 'the request did not arrive whole in time', null, 'request_timeout'));
    else rawAnswer(socket, 400, 'Bad Request', new ApiError(400, `malformed HTTP request (${err.code ?? err.message})`, null, 'malformed_request'));
  });
  // CONNECT (a proxy's method): Node hands over the bare socket, which would otherwise be closed unanswered.
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => {});
    rawAnswer(
      socket,
      405,
      'Method Not Allowed',
      new ApiError(405, 'CONNECT is not allowed: this is not a proxy', null, 'method_not_allowed'),
      'Allow: GET, POST, OPTIONS\r\n',
    );
    log(`CONNECT ${quote(req.url ?? '')} 405`);
  });
  server.keepAliveTimeout = 65_000;
  // A request must arrive whole within a minute (a generation's time does not count).
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;

  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, o)));
    server.listen(o.port, o.host, () => {
      // After listening, a failure to accept a connection (e.g. EMFILE) is logged; it must not end the process.
      server.on('error', (e: Error) => log(`server error: ${e.message}`));
      const port = (server.address() as AddressInfo).port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve({
        url: `http://${host}:${port}`,
        port,
        queue: () => ({ active: queue.active, waiting: queue.length }),
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** A failure to listen, said plainly. */
function listenError(e: NodeJS.ErrnoException, o: { host: string; port: number }): Error {
  if (e.code === 'EADDRINUSE')
    return new UnicornError(`port ${o.port} on ${o.host} is already in use`, {
      hint: 'another server is listening there: pick another with --port (or --port 0 for any free one)',
    });
  if (e.code === 'EACCES')
    return new UnicornError(`not allowed to listen on ${o.host}:${o.port}`, { hint: 'ports below 1024 need privileges: use --port 8080' });
  if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new UnicornError(`${o.host} is not an address of this machine`, { hint: '--host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)' });
  }
  return e;
}

/** Checks that host:port can be listened on, before minutes are spent loading a model. */
export function checkListen(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, { host, port })));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
