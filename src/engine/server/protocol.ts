/**
 * The resident model server's wire format: newline-delimited JSON over a Unix domain socket in the
 * user's runtime directory (owner-only permissions), one socket per model directory.
 */
import { UnicornError } from '../errors.js';
import type { ChatMessage } from '../text/tokenizer.js';
import type { TurnStats } from '../generate/chat.js';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import type { KvCacheType } from '../models/memory.js';
import { type SamplingOptions, checkSampling } from '../generate/sampler.js';

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
  /** How its KV cache stores keys and values (`load --keep --kv-cache`); absent from a server of an older unicorn: f16. */
  readonly kvCache?: KvCacheType;
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

export { runtimeDir, socketFor } from './runtime.js';

/** The longest line either side reads (a request carries a prompt; the context limits it long before this). */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

/** What `lines` reports besides lines: a line that is not JSON (the stream goes on), or one over the limit (it ends). */
export type LineProblem = { readonly kind: 'json'; readonly message: string } | { readonly kind: 'too-long'; readonly message: string };

/**
 * Splits a byte stream into JSON lines. Bytes are kept as bytes until a line is whole (a UTF-8
 * character split between two chunks stays whole), and each chunk is searched once, so a long line
 * costs linear time. A line that is not JSON is reported to `onBad` and skipped; one longer than
 * `maxBytes` is reported as soon as that many bytes came without a newline, and nothing after it
 * is read (the caller ends the connection).
 */
export function lines(onLine: (v: unknown) => void, onBad: (p: LineProblem) => void = () => {}, maxBytes = MAX_LINE_BYTES): (chunk: Buffer) => void {
  let parts: Buffer[] = [];
  let pending = 0;
  let dead = false;
  const emit = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      onBad({ kind: 'json', message: `not a JSON line (${e instanceof Error ? e.message : String(e)})` });
      return;
    }
    onLine(v);
  };
  return (chunk) => {
    if (dead) return;
    let from = 0;
    for (let i = chunk.indexOf(10, from); i >= 0 && !dead; i = chunk.indexOf(10, from)) {
      if (pending + i - from > maxBytes) break;
      const line = parts.length === 0 ? chunk.subarray(from, i) : Buffer.concat([...parts, chunk.subarray(from, i)]);
      parts = [];
      pending = 0;
      from = i + 1;
      emit(line);
    }
    if (dead) return;
    pending += chunk.length - from;
    if (pending > maxBytes) {
      dead = true;
      parts = [];
      onBad({ kind: 'too-long', message: `a line longer than ${maxBytes} bytes` });
      return;
    }
    if (from < chunk.length) parts.push(chunk.subarray(from));
  };
}

/** A request line of the wrong shape: answered with an error, the connection goes on. */
export class BadRequestError extends UnicornError {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Throws a BadRequestError naming `what` unless `ok`. */
function need(ok: boolean, what: string): void {
  if (!ok) throw new BadRequestError(`bad request: ${what}`);
}

function checkSamplingField(v: unknown): SamplingOptions {
  need(isObject(v), '"sampling" must be an object');
  const o = v as Record<string, unknown>;
  for (const k of ['temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'repeatLastN', 'seed'])
    need(typeof o[k] === 'number', `"sampling.${k}" must be a number`);
  for (const k of ['presencePenalty', 'frequencyPenalty']) need(o[k] === undefined || typeof o[k] === 'number', `"sampling.${k}" must be a number`);
  const bad = checkSampling(o as unknown as SamplingOptions);
  need(bad.length === 0, bad.join('; '));
  return o as unknown as SamplingOptions;
}

function checkMessages(v: unknown, field: string): void {
  need(
    Array.isArray(v) && v.every((m) => isObject(m) && typeof m['role'] === 'string' && typeof m['content'] === 'string'),
    `"${field}" must be a list of {role, content} strings`,
  );
}

function checkMaxTokens(v: unknown): void {
  need(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, '"maxTokens" must be a whole number, 0 or more');
}

/**
 * A request line as the server takes it: its shape checked field by field (types, and sampling's
 * ranges), so that nothing a client sends reaches the generator as something it does not expect.
 * Throws a BadRequestError that names the field.
 */
export function parseRequest(v: unknown): Request {
  need(isObject(v), 'a request is a JSON object with an "op"');
  const r = v as Record<string, unknown>;
  switch (r['op']) {
    case 'info':
    case 'abort':
    case 'reset':
    case 'stop':
      return { op: r['op'] };
    case 'complete': {
      const q = r['req'];
      need(isObject(q), '"req" must be an object');
      const c = q as Record<string, unknown>;
      const prompt = c['prompt'];
      need(
        typeof prompt === 'string' || (Array.isArray(prompt) && prompt.every((t) => typeof t === 'number')),
        '"req.prompt" must be text or a list of token ids',
      );
      need(typeof c['chat'] === 'boolean', '"req.chat" must be true or false');
      if (c['messages'] !== undefined) checkMessages(c['messages'], 'req.messages');
      need(c['system'] === undefined || typeof c['system'] === 'string', '"req.system" must be text');
      need(c['templateVars'] === undefined || isObject(c['templateVars']), '"req.templateVars" must be an object');
      checkSamplingField(c['sampling']);
      checkMaxTokens(c['maxTokens']);
      need(Array.isArray(c['stop']) && (c['stop'] as unknown[]).every((s) => typeof s === 'string'), '"req.stop" must be a list of strings');
      return { op: 'complete', req: c as unknown as CompletionRequest };
    }
    case 'chat':
      checkMessages(r['messages'], 'messages');
      checkMaxTokens(r['maxTokens']);
      return { op: 'chat', messages: r['messages'] as ChatMessage[], sampling: checkSamplingField(r['sampling']), maxTokens: r['maxTokens'] as number };
    default:
      throw new BadRequestError(
        `bad request: unknown "op" ${typeof r['op'] === 'string' ? JSON.stringify(r['op'].slice(0, 40)) : `of type ${r['op'] === null ? 'null' : typeof r['op']}`}`,
        { hint: 'ops: info, complete, chat, abort, reset, stop' },
      );
  }
}

/** Whether a line from the server is a response at all (an object with a string "op"); the client refuses others. */
export function isResponse(v: unknown): v is Response {
  return isObject(v) && typeof v['op'] === 'string';
}
