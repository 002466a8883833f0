/**
 * The resident model server: one process holds a loaded model and answers completion and chat
 * requests over a Unix socket, one generation at a time (they share the GPU and the KV cache; a
 * conversation that continues where the cache is reuses it). A client that disconnects mid-way
 * stops its generation; the server goes on serving the others.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { UnicornError } from '../errors.js';
import { LocalReplier } from '../generate/chat.js';
import { complete } from '../generate/complete.js';
import type { Runner } from '../generate/runner.js';
import { type Request, type Response, type ServerInfo, lines, socketFor } from './protocol.js';

/** Whether something answers on a socket path (a file left by a dead server does not). */
export function socketAlive(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function serve(runner: Runner, opts: { onReady?: (socket: string) => void } = {}): Promise<void> {
  const file = socketFor(runner.model.dir);
  if (fs.existsSync(file)) {
    if (await socketAlive(file)) throw new UnicornError(`a server already holds ${runner.model.dir} (${file})`, { hint: '`unicorn ps` lists it; `unicorn stop` unloads it' });
    fs.rmSync(file); // left behind by a server that died
  }
  const loadedAt = new Date().toISOString();
  const info = (): ServerInfo => ({
    model: runner.model.dir, pid: process.pid, device: runner.device?.info.name ?? 'cpu', ctx: runner.backend.ctx, contextUsed: runner.session.contextUsed,
    gpuBytes: runner.gpuBytes(), loadedAt, loadSeconds: runner.loadSeconds, bytes: runner.loadedBytes, defaults: runner.defaults,
    chatTemplate: runner.codec?.chatTemplate != null,
  });
  const replier = runner.codec !== null && runner.codec.chatTemplate !== null ? new LocalReplier(runner) : null;
  let queue: Promise<void> = Promise.resolve();
  let stopping = false;

  const server = net.createServer((sock) => {
    let aborted = false;
    sock.on('close', () => { aborted = true; });
    sock.on('error', () => { aborted = true; });
    const send = (r: Response) => { if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`); };
    const fail = (e: unknown) => send({
      op: 'error', message: e instanceof Error ? e.message : String(e), ...(e instanceof Error ? { name: e.name } : {}),
      ...(e instanceof UnicornError && e.hint !== undefined ? { hint: e.hint } : {}),
    });
    sock.on('data', lines((v) => {
      const req = v as Request;
      switch (req.op) {
        case 'info': send({ op: 'info', info: info() }); break;
        case 'abort': aborted = true; break;
        case 'reset': runner.session.reset(); send({ op: 'ok' }); break;
        case 'stop':
          stopping = true;
          send({ op: 'ok' });
          server.close();
          break;
        case 'complete':
        case 'chat':
          aborted = false;
          queue = queue.then(async () => {
            if (aborted) return;
            try {
              if (req.op === 'complete') {
                const result = await complete(runner, req.req, (text) => send({ op: 'text', text }), () => aborted);
                send({ op: 'done', result });
              } else {
                if (replier === null) throw new UnicornError(`${runner.model.dir} has no chat template (or no tokenizer)`);
                const r = await replier.reply(req.messages, { sampling: req.sampling, maxTokens: req.maxTokens, onText: (text) => send({ op: 'text', text }), shouldStop: () => aborted });
                send({ op: 'replied', reply: r.reply, stats: r.stats });
              }
            } catch (e) {
              fail(e);
            }
          });
          break;
        default:
          fail(new Error(`unknown request ${JSON.stringify(v)}`));
      }
    }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  fs.chmodSync(file, 0o600);
  const cleanup = () => { try { fs.rmSync(file, { force: true }); } catch { /* gone */ } };
  process.once('exit', cleanup);
  opts.onReady?.(file);
  await new Promise<void>((resolve) => server.once('close', () => resolve()));
  await queue;
  cleanup();
  void stopping;
}
