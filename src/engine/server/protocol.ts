/**
 * The resident model server's wire format: newline-delimited JSON over a Unix domain socket in the
 * user's runtime directory (owner-only permissions), one socket per model directory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChatMessage } from '../text/tokenizer.js';
import type { TurnStats } from '../generate/chat.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import type { SamplingOptions } from '../generate/sampler.js';

export type Request =
  | { readonly op: 'info' }
  | { readonly op: 'complete'; readonly req: CompletionRequest }
  | { readonly op: 'chat'; readonly messages: readonly ChatMessage[]; readonly sampling: SamplingOptions; readonly maxTokens: number }
  | { readonly op: 'abort' }
  | { readonly op: 'reset' }
  | { readonly op: 'stop' };

export interface ServerInfo {
  readonly model: string;
  readonly pid: number;
  readonly device: string;
  readonly ctx: number;
  readonly contextUsed: number;
  readonly gpuBytes: number | null;
  readonly loadedAt: string;
  readonly loadSeconds: number;
  readonly bytes: number;
  readonly defaults: Partial<SamplingOptions>;
  /** Whether the model has a tokenizer and a chat template. */
  readonly chatTemplate?: boolean;
}

export type Response =
  | { readonly op: 'info'; readonly info: ServerInfo }
  | { readonly op: 'text'; readonly text: string }
  | { readonly op: 'done'; readonly result: CompletionResult }
  | { readonly op: 'replied'; readonly reply: string; readonly stats: TurnStats }
  | { readonly op: 'ok' }
  /** `name`: the error's class (ContextFullError, RangeError...), so a client can tell a bad request from a failure. */
  | { readonly op: 'error'; readonly message: string; readonly hint?: string; readonly name?: string };

/** The runtime directory for sockets: $XDG_RUNTIME_DIR/unicorn, else a private folder in the temp dir. */
export function runtimeDir(): string {
  const base = process.env['XDG_RUNTIME_DIR'];
  const dir = base !== undefined && base !== '' ? path.join(base, 'unicorn') : path.join(os.tmpdir(), `unicorn-${os.userInfo().uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  return dir;
}

/** The socket of the server holding a model directory. */
export function socketFor(modelDir: string): string {
  const real = fs.existsSync(modelDir) ? fs.realpathSync(modelDir) : path.resolve(modelDir);
  return path.join(runtimeDir(), `model-${createHash('sha256').update(real).digest('hex').slice(0, 16)}.sock`);
}

/** Splits a byte stream into JSON lines. */
export function lines(onLine: (v: unknown) => void): (chunk: Buffer) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim() !== '') onLine(JSON.parse(line));
    }
  };
}
