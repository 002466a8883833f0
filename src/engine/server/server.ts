/**
 * The resident model server: one process holds a loaded model and answers completion and chat
 * requests over a Unix socket, one generation at a time (they share the GPU and the KV cache; a
 * conversation that continues where the cache is reuses it). A client that disconnects mid-way
 * stops its generation; the server goes on serving the others.
 *
 * One server per model: the process holds the model's lock (lock.ts) from before it loads until it
 * has exited, so a second `load --keep` finds it instead of loading another copy. The socket is
 * removed only by the server that bound it (its identity is compared first). Nothing a client sends
 * ends the server: a line that is not JSON, or not a request of the right shape, is answered with an
 * error; a line over MAX_LINE_BYTES is answered and its connection closed. `stop` ends the process:
 * every attached client is told and cut off, the generation under way is aborted.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { UnicornError } from '../errors.js';
import { LocalReplier } from '../generate/chat.js';
import { complete } from '../generate/complete.js';
import type { Runner } from '../generate/runner.js';
import { type LockHolder, ServerLock, acquireLock } from './lock.js';
import { type Request, type Response, type ServerInfo, lines, parseRequest } from './protocol.js';
import { identity, lockFor, realModelDir, sameFile, socketFor } from './runtime.js';

/** Output a client has not read yet past which it is cut off (it asks and never reads). */
const MAX_UNREAD_BYTES = 16 * 1024 * 1024;

/** The most clients at once (each is a socket and a little memory; run, chat and serve take one each). */
const MAX_CONNECTIONS = 256;

/** What clients that are cut off by `stop` are told. */
const STOPPED = {
  message: 'the resident server was stopped (unicorn stop)',
  hint: 'load the model again (unicorn load --keep), or run without a resident server',
};

/** Whether something answers on a socket path (a file left by a dead server does not). */
export function socketAlive(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Another process holds the model's lock: it is loading or serving the model. */
export class AlreadyServedError extends UnicornError {
  constructor(
    readonly modelDir: string,
    readonly holder: LockHolder,
  ) {
    super(`a server for ${modelDir} is already loading or running (pid ${holder.pid})`, { hint: '`unicorn ps` lists it; `unicorn stop` unloads it' });
  }
}

/**
 * Claims a model directory for this process before it loads it: the lock, or an AlreadyServedError
 * naming the process that has it.
 */
export function claimModel(modelDir: string): ServerLock {
  const real = realModelDir(modelDir);
  const r = acquireLock(lockFor(real));
  if (!(r instanceof ServerLock)) throw new AlreadyServedError(real, r.holder);
  return r;
}

/** Clears the socket path under a held lock: a file there is a dead server's, unless something still answers. */
async function clearSocketPath(file: string, model: string): Promise<void> {
  if (identity(file) === null) return;
  if (await socketAlive(file))
    throw new UnicornError(`a server already holds ${model} (${file})`, { hint: '`unicorn ps` lists it; `unicorn stop` unloads it' });
  fs.rmSync(file, { force: true }); // left behind by a server that died (the lock is ours: nobody else binds here)
}

/**
 * Serves `runner` until a client sends `stop` (or the process is ended). `claim`: the model's lock,
 * taken before loading (claimModel); without one it is taken here. A lock taken here is released
 * at the end; one passed in stays the caller's to release once the model is unloaded. `info` reports
 * the backend's KV cache type.
 */
export async function serve(runner: Runner, opts: { onReady?: (socket: string) => void; claim?: ServerLock } = {}): Promise<void> {
  const model = realModelDir(runner.model.dir);
  const claim = opts.claim ?? claimModel(model);
  try {
    await serveClaimed(runner, model, opts.onReady);
  } finally {
    if (opts.claim === undefined) claim.release();
  }
}

async function serveClaimed(runner: Runner, model: string, onReady?: (socket: string) => void): Promise<void> {
  const file = socketFor(model);
  await clearSocketPath(file, model);
  const loadedAt = new Date().toISOString();
  const info = (): ServerInfo => ({
    model,
    pid: process.pid,
    device: runner.device?.info.name ?? 'cpu',
    ctx: runner.backend.ctx,
    kvCache: runner.backend.kvCache,
    contextUsed: runner.session.contextUsed,
    gpuBytes: runner.gpuBytes(),
    loadedAt,
    loadSeconds: runner.loadSeconds,
    bytes: runner.loadedBytes,
    defaults: runner.defaults,
    chatTemplate: runner.codec?.chatTemplate != null,
  });
  const replier = runner.codec !== null && runner.codec.chatTemplate !== null ? new LocalReplier(runner) : null;
  let queue: Promise<void> = Promise.resolve();
  let stopping = false;
  const clients = new Set<net.Socket>();
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => {
    stopped = resolve;
  });

  const server = net.createServer((sock) => {
    clients.add(sock);
    let aborted = false;
    const shouldStop = () => aborted || stopping;
    sock.on('close', () => {
      aborted = true;
      clients.delete(sock);
    });
    sock.on('error', () => {
      aborted = true;
    });
    const send = (r: Response) => {
      if (sock.destroyed) return;
      sock.write(`${JSON.stringify(r)}\n`);
      if (sock.writableLength > MAX_UNREAD_BYTES) sock.destroy(); // it asks and never reads
    };
    const fail = (e: unknown) =>
      send({
        op: 'error',
        message: e instanceof Error ? e.message : String(e),
        ...(e instanceof Error ? { name: e.name } : {}),
        ...(e instanceof UnicornError && e.hint !== undefined ? { hint: e.hint } : {}),
      });
    const generate = (req: Request & { op: 'complete' | 'chat' }) => {
      aborted = false;
      queue = queue.then(async () => {
        if (shouldStop()) return;
        try {
          if (req.op === 'complete') {
            const result = await complete(runner, req.req, (text) => send({ op: 'text', text }), shouldStop);
            send({ op: 'done', result });
          } else {
            if (replier === null) throw new UnicornError(`${model} has no chat template (or no tokenizer)`);
            const r = await replier.reply(req.messages, {
              sampling: req.sampling,
              maxTokens: req.maxTokens,
              onText: (text) => send({ op: 'text', text }),
              shouldStop,
            });
            send({ op: 'replied', reply: r.reply, stats: r.stats });
          }
        } catch (e) {
          fail(e);
        }
      });
    };
    const handle = (v: unknown) => {
      if (stopping) return;
      const req = parseRequest(v);
      switch (req.op) {
        case 'info':
          send({ op: 'info', info: info() });
          break;
        case 'abort':
          aborted = true;
          break;
        // After the generation under way (resetting the cache under it would corrupt it).
        case 'reset':
          queue = queue
            .then(() => {
              runner.session.reset();
              send({ op: 'ok' });
            })
            .catch(fail);
          break;
        case 'stop':
          send({ op: 'ok' });
          shutdown();
          break;
        case 'complete':
        case 'chat':
          generate(req);
          break;
      }
    };
    sock.on(
      'data',
      lines(
        (v) => {
          try {
            handle(v);
          } catch (e) {
            fail(e); // a request of the wrong shape (BadRequestError), or a failure answering it: the server goes on
          }
        },
        (problem) => {
          fail(new UnicornError(`bad request: ${problem.message}`));
          if (problem.kind === 'too-long') {
            sock.end();
            setTimeout(() => sock.destroy(), 1000).unref();
          }
        },
      ),
    );
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.on('error', () => {
    /* an accept failure (EMFILE...) leaves the server serving the clients it has */
  });

  await new Promise<void>((resolve, reject) => {
    const failed = (e: Error) => reject(e instanceof UnicornError ? e : new UnicornError(`cannot listen on ${file}: ${e.message}`, { cause: e }));
    server.once('error', failed);
    server.listen(file, () => {
      server.off('error', failed);
      resolve();
    });
  });
  fs.chmodSync(file, 0o600);
  const bound = identity(file);
  /** Closes the listener: libuv then unlinks the socket path, so only while it is still ours; otherwise the process just stops listening. */
  const closeListener = () => {
    if (sameFile(identity(file), bound)) server.close();
    else server.unref();
  };
  const onExit = () => closeListener();
  process.once('exit', onExit);

  /** Stops serving: the generation under way is aborted, every client is told and cut off, the socket goes. */
  function shutdown(): void {
    if (stopping) return;
    stopping = true;
    closeListener();
    for (const c of clients) {
      c.end(`${JSON.stringify({ op: 'error', name: 'StoppedError', ...STOPPED } satisfies Response)}\n`);
      setTimeout(() => c.destroy(), 1000).unref(); // one that does not read its last line
    }
    void queue.then(() => stopped());
  }

  onReady?.(file);
  await done;
  process.off('exit', onExit);
}
