/** A client of the resident model server (see server.ts): run, chat, ps and stop use it. */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { UnicornError } from '../errors.js';
import type { Replier, TurnStats } from '../generate/chat.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import type { SamplingOptions } from '../generate/sampler.js';
import type { ChatMessage } from '../text/tokenizer.js';
import { type Request, type Response, type ServerInfo, lines, runtimeDir, socketFor } from './protocol.js';

/** An error the resident server reported; `remoteName` is its class there (ContextFullError, RangeError...). */
export class RemoteError extends UnicornError {
  constructor(message: string, readonly remoteName: string, hint?: string) {
    super(message, hint === undefined ? {} : { hint });
  }
}

export class ResidentClient {
  private handler: ((r: Response) => void) | undefined;

  private constructor(private readonly sock: net.Socket, readonly socket: string) {
    sock.on('data', lines((v) => this.handler?.(v as Response)));
  }

  /** Connects to the server holding `modelDir`, or null when none does (a stale socket file is removed). */
  static async connect(modelDir: string): Promise<ResidentClient | null> {
    return ResidentClient.connectSocket(socketFor(modelDir));
  }

  static connectSocket(file: string): Promise<ResidentClient | null> {
    if (!fs.existsSync(file)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const s = net.connect(file);
      s.once('connect', () => resolve(new ResidentClient(s, file)));
      s.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') fs.rmSync(file, { force: true }); // a dead server's socket
        resolve(null);
      });
    });
  }

  private send(r: Request): void {
    this.sock.write(`${JSON.stringify(r)}\n`);
  }

  /** Sends a request and collects responses until `final` returns a value. */
  private exchange<T>(r: Request, final: (resp: Response) => T | undefined, onText?: (t: string) => void, shouldStop?: () => boolean): Promise<T> {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) {
        reject(new UnicornError('the resident server closed the connection', { hint: 'it may have been stopped; load the model again' }));
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      if (shouldStop !== undefined) {
        timer = setInterval(() => { if (shouldStop()) { this.send({ op: 'abort' }); clearInterval(timer); } }, 30);
      }
      const done = () => { if (timer !== undefined) clearInterval(timer); this.handler = undefined; this.sock.off('close', closed); };
      const closed = () => { done(); reject(new UnicornError('the resident server closed the connection', { hint: 'it may have been stopped; run again to load the model here' })); };
      this.sock.once('close', closed);
      this.handler = (resp) => {
        if (resp.op === 'text') { onText?.(resp.text); return; }
        if (resp.op === 'error') { done(); reject(new RemoteError(resp.message, resp.name ?? 'Error', resp.hint)); return; }
        const v = final(resp);
        if (v !== undefined) { done(); resolve(v); }
      };
      this.send(r);
    });
  }

  info(): Promise<ServerInfo> {
    return this.exchange({ op: 'info' }, (r) => (r.op === 'info' ? r.info : undefined));
  }

  complete(req: CompletionRequest, onText: (t: string) => void, shouldStop?: () => boolean): Promise<CompletionResult> {
    return this.exchange({ op: 'complete', req }, (r) => (r.op === 'done' ? r.result : undefined), onText, shouldStop);
  }

  chat(messages: readonly ChatMessage[], sampling: SamplingOptions, maxTokens: number, onText: (t: string) => void, shouldStop: () => boolean): Promise<{ reply: string; stats: TurnStats }> {
    return this.exchange({ op: 'chat', messages, sampling, maxTokens }, (r) => (r.op === 'replied' ? { reply: r.reply, stats: r.stats } : undefined), onText, shouldStop);
  }

  async reset(): Promise<void> {
    await this.exchange({ op: 'reset' }, (r) => (r.op === 'ok' ? true : undefined));
  }

  stop(): Promise<void> {
    return this.exchange({ op: 'stop' }, (r) => (r.op === 'ok' ? true : undefined)).then(() => undefined);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Chat replies from a resident server. */
export class RemoteReplier implements Replier {
  constructor(private readonly client: ResidentClient, readonly model: string) {}

  reply(messages: readonly ChatMessage[], o: { sampling: SamplingOptions; maxTokens: number; onText: (t: string) => void; shouldStop: () => boolean }): Promise<{ reply: string; stats: TurnStats }> {
    return this.client.chat(messages, o.sampling, o.maxTokens, o.onText, o.shouldStop);
  }

  async reset(): Promise<void> {
    await this.client.reset();
  }

  async context(): Promise<{ used: number; limit: number; gpuBytes: number | null }> {
    const i = await this.client.info();
    return { used: i.contextUsed, limit: i.ctx, gpuBytes: i.gpuBytes };
  }
}

/** Every resident server of this user: live ones with their info; dead sockets are removed. */
export async function listResident(): Promise<ServerInfo[]> {
  const dir = runtimeDir();
  const out: ServerInfo[] = [];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.sock')).sort()) {
    const c = await ResidentClient.connectSocket(path.join(dir, name));
    if (c === null) continue;
    try {
      out.push(await c.info());
    } finally {
      c.close();
    }
  }
  return out;
}
