/**
 * The OpenAI-compatible HTTP server over one loaded model (in this process, or a resident server's).
 * node:http, no framework: routing, bearer-token check, bounded JSON bodies, a first-come queue in
 * front of the engine (one generation at a time: they share the GPU and the KV cache, so a chat that
 * continues the previous request's conversation prefills only its new turn), server-sent events.
 * Every failure of a request is answered with an OpenAI error object and never reaches the process.
 */
import { timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { UnicornError } from '../errors.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import { type SamplingOptions, resolveSampling } from '../generate/sampler.js';
import { RemoteError } from '../server/client.js';
import {
  ApiError, type ParsedRequest, type ResponseHead, chunk, finishReason, fullResponse, newId, parseChatRequest, parseCompletionRequest, usageChunk,
} from './openai.js';

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
  /** Access-Control-Allow-Origin for browsers (off unless given). */
  readonly cors?: string;
  readonly version: string;
  /** One line per request (method, path, status, tokens, seconds). */
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
    } finally {
      this.active = 0;
      void this.next();
    }
  }
}

/** The status and error object for anything a request's handling threw. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const name = e instanceof RemoteError ? e.remoteName : e instanceof Error ? e.name : '';
  const message = e instanceof Error ? e.message : String(e);
  if (name === 'ContextFullError') return new ApiError(400, message, 'messages', 'context_length_exceeded');
  if (name === 'ChatTemplateError' || name === 'RangeError') return new ApiError(400, message, null, 'invalid_value');
  if (e instanceof UnicornError) return new ApiError(500, `${message}${e.hint === undefined ? '' : ` (${e.hint})`}`, null, null);
  return new ApiError(500, `internal error: ${message}`);
}

export function startApi(backend: ApiBackend, o: ApiOptions): Promise<ApiServer> {
  const queue = new Queue(o.maxQueue);
  const fingerprint = `fp_unicorn_${o.version}`;
  const key = o.apiKey === undefined ? undefined : Buffer.from(`Bearer ${o.apiKey}`);

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
    res.end(text);
  };
  const fail = (res: http.ServerResponse, e: ApiError, headers: Record<string, string> = {}) => send(res, e.status, e.body(), headers);

  const authorized = (req: http.IncomingMessage): boolean => {
    if (key === undefined) return true;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === key.length && timingSafeEqual(got, key);
  };

  /** Reads the body as JSON within the size limit. */
  const readJson = (req: http.IncomingMessage): Promise<unknown> => new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > o.maxBodyBytes) {
      reject(new ApiError(413, `the request body is ${declared} bytes; the limit is ${o.maxBodyBytes} (unicorn serve --max-body)`, null, 'request_too_large'));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > o.maxBodyBytes) {
        over = true;
        parts.length = 0;
        reject(new ApiError(413, `the request body is over the limit of ${o.maxBodyBytes} bytes (unicorn serve --max-body)`, null, 'request_too_large'));
        return;
      }
      parts.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      const text = Buffer.concat(parts).toString('utf8');
      if (text.trim() === '') { reject(new ApiError(400, 'the request has no body: send a JSON object')); return; }
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `the request body is not valid JSON (${e instanceof Error ? e.message : String(e)})`, null, 'invalid_json'));
      }
    });
  });

  const modelObject = () => ({ id: backend.modelId, object: 'model', created: startedAt, owned_by: 'unicorn', meta: { context_length: backend.ctx } });
  const startedAt = Math.floor(Date.now() / 1000);

  /** Runs one completion request: queued, then streamed or answered whole. */
  const generate = (res: http.ServerResponse, parsed: ParsedRequest, done: (line: string) => void) => {
    if (parsed.model !== undefined && parsed.model !== backend.modelId) {
      throw new ApiError(404, `The model '${parsed.model}' does not exist: this server serves '${backend.modelId}' (GET /v1/models)`, 'model', 'model_not_found');
    }
    if (parsed.endpoint === 'chat' && !backend.chat) {
      throw new ApiError(400, `'${backend.modelId}' has no chat template: use /v1/completions with a plain prompt`, 'messages', 'no_chat_template');
    }
    const sampling = resolveSampling(parsed.sampling, backend.defaults);
    const completion: CompletionRequest = { ...parsed.completion, sampling, maxTokens: parsed.completion.maxTokens ?? backend.ctx };
    let gone = false;
    res.on('close', () => { if (!res.writableFinished) gone = true; });
    const head: ResponseHead = { id: newId(parsed.endpoint), created: Math.floor(Date.now() / 1000), model: backend.modelId, system_fingerprint: fingerprint };
    const echoed = parsed.echo && typeof parsed.completion.prompt === 'string' ? parsed.completion.prompt : '';
    const job: Job = {
      gone: () => gone,
      run: async () => {
        let started = false;
        const event = (v: unknown) => { if (!gone) res.write(`data: ${JSON.stringify(v)}\n\n`); };
        const open = () => {
          if (started) return;
          started = true;
          res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no', ...cors() });
          if (parsed.endpoint === 'chat') event(chunk(parsed, head, { first: true, text: '' }));
          if (echoed !== '') event(chunk(parsed, head, { text: echoed }));
        };
        try {
          const r = await backend.complete(completion, (text) => {
            if (!parsed.stream || gone) return;
            open();
            event(chunk(parsed, head, { text }));
          }, () => gone);
          if (gone) { done(`client left · ${r.tokens.length} tokens`); return; }
          if (parsed.stream) {
            open();
            event(chunk(parsed, head, { finish: finishReason(r.finish) }));
            if (parsed.includeUsage) event(usageChunk(parsed, head, r));
            res.end('data: [DONE]\n\n');
          } else {
            send(res, 200, fullResponse(parsed, head, r, echoed), cors());
          }
          done(`200 · ${r.promptTokens} + ${r.tokens.length} tokens${r.decodeTokensPerSecond === null ? '' : ` · ${r.decodeTokensPerSecond} tok/s`}`);
        } catch (e) {
          const err = toApiError(e);
          if (started) {
            event(err.body());
            res.end('data: [DONE]\n\n');
          } else {
            fail(res, err, cors());
          }
          done(`${err.status} · ${err.message}`);
        }
      },
    };
    if (!queue.push(job)) throw new ApiError(503, `the server is busy: ${o.maxQueue} requests are already waiting (unicorn serve --max-queue)`, null, 'server_busy', 'server_error');
  };

  const cors = (): Record<string, string> => (o.cors === undefined ? {} : { 'Access-Control-Allow-Origin': o.cors, Vary: 'Origin' });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const t0 = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Clients configured with or without the /v1 prefix reach the same routes.
    const route = url.pathname.replace(/\/+$/, '').replace(/^\/v1(?=\/|$)/, '') || '/';
    const label = `${req.method} ${url.pathname}`;
    const done = (what: string) => o.log?.(`${label} ${what} · ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    try {
      if (req.method === 'OPTIONS' && o.cors !== undefined) {
        res.writeHead(204, { ...cors(), 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type', 'Access-Control-Max-Age': '86400' });
        res.end();
        return;
      }
      const allow = (methods: string) => {
        if (!methods.split(', ').includes(req.method ?? '')) {
          throw Object.assign(new ApiError(405, `${req.method} is not allowed on ${url.pathname}; use ${methods}`, null, 'method_not_allowed'), { allow: methods });
        }
      };
      if (route === '/health') {
        allow('GET');
        let s;
        try {
          s = await backend.status();
        } catch (e) {
          send(res, 503, { status: 'unavailable', model: backend.modelId, error: e instanceof Error ? e.message : String(e) }, cors());
          done('503');
          return;
        }
        send(res, 200, { status: 'ok', model: backend.modelId, device: s.device, resident: s.resident, context_length: backend.ctx, context_used: s.contextUsed, gpu_bytes: s.gpuBytes, queue: { active: queue.active, waiting: queue.length } }, cors());
        done('200');
        return;
      }
      if (!authorized(req)) {
        throw new ApiError(401, 'Incorrect API key provided: send the key given to unicorn serve --api-key as "Authorization: Bearer <key>"', null, 'invalid_api_key');
      }
      if (route === '/models') {
        allow('GET');
        send(res, 200, { object: 'list', data: [modelObject()] }, cors());
        done('200');
        return;
      }
      if (route.startsWith('/models/')) {
        allow('GET');
        const id = decodeURIComponent(route.slice('/models/'.length));
        if (id !== backend.modelId) throw new ApiError(404, `The model '${id}' does not exist`, 'model', 'model_not_found');
        send(res, 200, modelObject(), cors());
        done('200');
        return;
      }
      if (route === '/chat/completions' || route === '/completions') {
        allow('POST');
        const body = await readJson(req);
        const parsed = route === '/completions' ? parseCompletionRequest(body) : parseChatRequest(body);
        generate(res, parsed, done);
        return;
      }
      throw new ApiError(404, `there is no ${label}: the routes are GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health`, null, 'not_found');
    } catch (e) {
      const err = toApiError(e);
      // A body over the limit is not read further: answer, then close the connection.
      const allowHeader = (e as { allow?: string }).allow;
      fail(res, err, { ...cors(), ...(err.status === 413 ? { Connection: 'close' } : {}), ...(allowHeader === undefined ? {} : { Allow: allowHeader }) });
      // The rest of a body over the limit is read and dropped (closing on unread data would reset the
      // connection before the client reads the answer); Connection: close ends it after that.
      if (err.status === 413) req.resume();
      done(`${err.status} · ${err.message}`);
    }
  };

  const server = http.createServer((req, res) => { void handle(req, res); });
  // Malformed HTTP: answer 400 and drop the connection (the default would just close it).
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') {
      const body = JSON.stringify(new ApiError(400, `malformed HTTP request (${err.code ?? err.message})`).body());
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
  server.keepAliveTimeout = 65_000;
  // A request must arrive whole within a minute (a generation's time does not count).
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;

  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, o)));
    server.listen(o.port, o.host, () => {
      const port = (server.address() as AddressInfo).port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve({
        url: `http://${host}:${port}`,
        port,
        queue: () => ({ active: queue.active, waiting: queue.length }),
        close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }),
      });
    });
  });
}

/** A failure to listen, said plainly. */
function listenError(e: NodeJS.ErrnoException, o: { host: string; port: number }): Error {
  if (e.code === 'EADDRINUSE') return new UnicornError(`port ${o.port} on ${o.host} is already in use`, { hint: 'another server is listening there: pick another with --port (or --port 0 for any free one)' });
  if (e.code === 'EACCES') return new UnicornError(`not allowed to listen on ${o.host}:${o.port}`, { hint: 'ports below 1024 need privileges: use --port 8080' });
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
