/**
 * A client of the resident model server (see server.ts): run, chat, serve, ps and stop use it.
 * Before every connect, the socket and its folder are checked (runtime.ts: a socket owned by this
 * user in a folder that is this user's alone), so a prompt never goes to a server someone else put
 * there. A client never removes a socket (only the server that bound it does).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { UnicornError } from '../errors.js';
import type { Replier, TurnStats } from '../generate/chat.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import type { SamplingOptions } from '../generate/sampler.js';
import type { ChatMessage } from '../text/tokenizer.js';
import { processAlive } from './lock.js';
import { type Request, type Response, type ServerInfo, isResponse, lines } from './protocol.js';
import { checkOwnSocket, runtimeDir, socketFor } from './runtime.js';

/** How long `stop` waits for the server's process to end (it frees the model's memory first). */
const STOP_WAIT_MS = 60_000;

/** An error the resident server reported; `remoteName` is its class there (ContextFullError, RangeError...). */
export class RemoteError extends UnicornError {
  constructor(
    message: string,
    readonly remoteName: string,
    hint?: string,
  ) {
    super(message, hint === undefined ? {} : { hint });
  }
}

export class ResidentClient {
  private handler: ((r: Response) => void) | undefined;

  private constructor(
    private readonly sock: net.Socket,
    readonly socket: string,
  ) {
    const garbled = () => {
      this.handler?.({ op: 'error', message: 'the resident server sent something that is not a response', name: 'ProtocolError' });
      sock.destroy();
    };
    sock.on(
      'data',
      lines((v) => {
        if (isResponse(v)) this.handler?.(v);
        else garbled();
      }, garbled),
    );
    sock.on('error', () => {
      /* reported as a close to the request under way */
    });
  }

  /**
   * Connects to the server holding `modelDir`: null when none does (no socket, or one that nothing
   * answers on: a dead server's); a RuntimeDirError where the socket or its folder is not this
   * user's (checkOwnSocket), before anything is sent.
   */
  static async connect(modelDir: string): Promise<ResidentClient | null> {
    return ResidentClient.connectSocket(socketFor(modelDir));
  }

  static async connectSocket(file: string): Promise<ResidentClient | null> {
    if (checkOwnSocket(file) === null) return null;
    return new Promise((resolve, reject) => {
      const s = net.connect(file);
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(new ResidentClient(s, file));
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')
          resolve(null); // a dead server's socket (its next server replaces it)
        else
          reject(
            new UnicornError(`cannot connect to the resident server at ${file}: ${e.code ?? e.message}`, {
              hint: '`unicorn ps` lists the resident servers; `unicorn stop` unloads them',
              cause: e,
            }),
          );
      });
    });
  }

  private send(r: Request): void {
    this.sock.write(`${JSON.stringify(r)}\n`);
  }

  /** Sends a request and collects responses until `final` returns a value. */
  private exchange<T>(
    r: Request,
    final: (resp: Response) => T | undefined,
    onText?: (t: string) => void,
    shouldStop?: () => boolean,
    timeoutMs?: number,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) {
        reject(new UnicornError('the resident server closed the connection', { hint: 'it may have been stopped; load the model again' }));
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      if (shouldStop !== undefined) {
        timer = setInterval(() => {
          if (shouldStop()) {
            this.send({ op: 'abort' });
            clearInterval(timer);
          }
        }, 30);
      }
      const deadline =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              done();
              this.sock.destroy();
              reject(
                new UnicornError(`the resident server at ${this.socket} did not answer within ${timeoutMs / 1000} s`, {
                  hint: '`unicorn stop` unloads it (or end its process)',
                }),
              );
            }, timeoutMs);
      const done = () => {
        if (timer !== undefined) clearInterval(timer);
        if (deadline !== undefined) clearTimeout(deadline);
        this.handler = undefined;
        this.sock.off('close', closed);
      };
      const closed = () => {
        done();
        reject(new UnicornError('the resident server closed the connection', { hint: 'it may have been stopped; run again to load the model here' }));
      };
      this.sock.once('close', closed);
      this.handler = (resp) => {
        if (resp.op === 'text') {
          onText?.(resp.text);
          return;
        }
        if (resp.op === 'error') {
          done();
          reject(new RemoteError(resp.message, resp.name ?? 'Error', resp.hint));
          return;
        }
        const v = final(resp);
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      this.send(r);
    });
  }

  /** The server's info; `timeoutMs`: give up (closing the connection) on a server that does not answer. */
  info(timeoutMs?: number): Promise<ServerInfo> {
    return this.exchange({ op: 'info' }, (r) => (r.op === 'info' ? r.info : undefined), undefined, undefined, timeoutMs);
  }

  complete(req: CompletionRequest, onText: (t: string) => void, shouldStop?: () => boolean): Promise<CompletionResult> {
    return this.exchange({ op: 'complete', req }, (r) => (r.op === 'done' ? r.result : undefined), onText, shouldStop);
  }

  chat(
    messages: readonly ChatMessage[],
    sampling: SamplingOptions,
    maxTokens: number,
    onText: (t: string) => void,
    shouldStop: () => boolean,
  ): Promise<{ reply: string; stats: TurnStats }> {
    return this.exchange(
      { op: 'chat', messages, sampling, maxTokens },
      (r) => (r.op === 'replied' ? { reply: r.reply, stats: r.stats } : undefined),
      onText,
      shouldStop,
    );
  }

  async reset(): Promise<void> {
    await this.exchange({ op: 'reset' }, (r) => (r.op === 'ok' ? true : undefined));
  }

  /**
   * Stops the server and waits until its process is gone (it cuts off every client, frees the
   * model and exits): once this resolves, the model's memory is free and the socket is gone.
   */
  async stop(): Promise<void> {
    const { pid } = await this.info(30_000);
    await this.exchange({ op: 'stop' }, (r) => (r.op === 'ok' ? true : undefined));
    for (const t0 = Date.now(); processAlive(pid);) {
      if (Date.now() - t0 > STOP_WAIT_MS)
        throw new UnicornError(`the resident server (pid ${pid}) stopped serving but has not exited after ${STOP_WAIT_MS / 1000} s`, {
          hint: `end it with \`kill ${pid}\``,
        });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Chat replies from a resident server. */
export class RemoteReplier implements Replier {
  constructor(
    private readonly client: ResidentClient,
    readonly model: string,
  ) {}

  reply(
    messages: readonly ChatMessage[],
    o: { sampling: SamplingOptions; maxTokens: number; onText: (t: string) => void; shouldStop: () => boolean },
  ): Promise<{ reply: string; stats: TurnStats }> {
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

/** A resident server as `ps` finds it. */
export interface Resident {
  readonly socket: string;
  readonly info: ServerInfo;
}

/**
 * Every resident server of this user: the live ones with their info. Sockets nothing answers on (a
 * dead server's) are passed over; one that fails the checks (not a socket of this user's) or does
 * not answer is passed over too, and reported to `onSkip`: `ps` never lists a server it has not checked.
 */
export async function listResident(onSkip: (socket: string, why: string) => void = () => {}): Promise<Resident[]> {
  const dir = runtimeDir();
  const out: Resident[] = [];
  for (const name of fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sock'))
    .sort()) {
    const socket = path.join(dir, name);
    let c: ResidentClient | null;
    try {
      c = await ResidentClient.connectSocket(socket);
    } catch (e) {
      if (!(e instanceof UnicornError)) throw e;
      onSkip(socket, e.message);
      continue;
    }
    if (c === null) continue;
    try {
      out.push({ socket, info: await c.info(10_000) });
    } catch (e) {
      if (!(e instanceof UnicornError)) throw e;
      onSkip(socket, e.message);
    } finally {
      c.close();
    }
  }
  return out;
}
