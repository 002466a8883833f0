/**
 * The OpenAI API's wire format, as far as a local text model can honour it: requests checked field
 * by field (a wrong type or range is a 400 naming the parameter, as OpenAI's own errors do), turned
 * into engine completion requests; responses and stream chunks built from the engine's results.
 * Parameters that would change the answer and that unicorn cannot honour (n > 1, logprobs, tools,
 * JSON mode, images) are refused rather than ignored; the rest of what clients send is accepted.
 */
import { randomBytes } from 'node:crypto';
import type { CompletionRequest, CompletionResult } from '../generate/complete.js';
import type { SamplingOptions } from '../generate/sampler.js';
import type { FinishReason } from '../generate/session.js';
import type { ChatMessage } from '../text/tokenizer.js';

/** An error with its HTTP status and OpenAI's error object fields. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** What the HTTP layer needs to run one request. */
export interface ParsedRequest {
  readonly endpoint: 'chat' | 'completions';
  /** The model the client named (undefined: the one served). */
  readonly model: string | undefined;
  /** The completion, its sampling still partial (the server adds the model's defaults). */
  readonly completion: Omit<CompletionRequest, 'sampling' | 'maxTokens'> & { readonly maxTokens: number | undefined };
  readonly sampling: Partial<SamplingOptions>;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** completions only: return the prompt before the completion. */
  readonly echo: boolean;
}

type Json = Record<string, unknown>;

const MAX_STOPS = 16;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads an optional field with a type check; null counts as absent (clients send explicit nulls). */
function opt<T>(body: Json, name: string, check: (v: unknown) => v is T, what: string): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new ApiError(400, `'${name}' must be ${what}, got ${describe(v)}`, name, 'invalid_type');
  return v;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isString = (v: unknown): v is string => typeof v === 'string';

function range(name: string, v: number | undefined, ok: (v: number) => boolean, what: string): void {
  if (v !== undefined && !ok(v)) throw new ApiError(400, `'${name}' must be ${what}, got ${v}`, name, 'invalid_value');
}

/** The fields both endpoints share: sampling, limits, stop, stream. */
function common(body: Json): Pick<ParsedRequest, 'model' | 'sampling' | 'stream' | 'includeUsage'> & { maxTokens: number | undefined; stop: string[] } {
  const model = opt(body, 'model', isString, 'a string');
  const temperature = opt(body, 'temperature', isNumber, 'a number');
  range('temperature', temperature, (v) => v >= 0 && v <= 2, 'between 0 and 2');
  const topP = opt(body, 'top_p', isNumber, 'a number');
  range('top_p', topP, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const topK = opt(body, 'top_k', isInt, 'a whole number');
  range('top_k', topK, (v) => v >= 0, '0 or more');
  const minP = opt(body, 'min_p', isNumber, 'a number');
  range('min_p', minP, (v) => v >= 0 && v < 1, 'in [0, 1)');
  const repetition = opt(body, 'repetition_penalty', isNumber, 'a number') ?? opt(body, 'repeat_penalty', isNumber, 'a number');
  range('repetition_penalty', repetition, (v) => v > 0 && v <= 10, 'in (0, 10]');
  const presence = opt(body, 'presence_penalty', isNumber, 'a number');
  range('presence_penalty', presence, (v) => v >= -2 && v <= 2, 'between -2 and 2');
  const frequency = opt(body, 'frequency_penalty', isNumber, 'a number');
  range('frequency_penalty', frequency, (v) => v >= -2 && v <= 2, 'between -2 and 2');
  const seed = opt(body, 'seed', isInt, 'a whole number');
  const maxTokens = opt(body, 'max_completion_tokens', isInt, 'a whole number') ?? opt(body, 'max_tokens', isInt, 'a whole number');
  range(
    body['max_completion_tokens'] !== undefined && body['max_completion_tokens'] !== null ? 'max_completion_tokens' : 'max_tokens',
    maxTokens,
    (v) => v >= 1,
    '1 or more',
  );
  const n = opt(body, 'n', isInt, 'a whole number');
  if (n !== undefined && n !== 1) throw new ApiError(400, `'n' must be 1: unicorn generates one choice per request`, 'n', 'unsupported_value');

  let stop: string[] = [];
  const s = body['stop'];
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    if (!s.every(isString)) throw new ApiError(400, `'stop' must be a string or an array of strings`, 'stop', 'invalid_type');
    stop = s;
  } else if (s !== undefined && s !== null)
    throw new ApiError(400, `'stop' must be a string or an array of strings, got ${describe(s)}`, 'stop', 'invalid_type');
  stop = stop.filter((x) => x !== '');
  if (stop.length > MAX_STOPS) throw new ApiError(400, `'stop' takes at most ${MAX_STOPS} strings, got ${stop.length}`, 'stop', 'invalid_value');

  const stream = opt(body, 'stream', isBool, 'a boolean') ?? false;
  const so = body['stream_options'];
  if (so !== undefined && so !== null && !isObject(so)) throw new ApiError(400, `'stream_options' must be an object`, 'stream_options', 'invalid_type');
  const includeUsage = isObject(so) && so['include_usage'] === true;

  if (body['logprobs'] === true || (typeof body['logprobs'] === 'number' && body['logprobs'] > 0)) {
    throw new ApiError(400, `'logprobs' is not supported by unicorn serve`, 'logprobs', 'unsupported_parameter');
  }
  if (Array.isArray(body['tools']) && body['tools'].length > 0) {
    throw new ApiError(400, `'tools' (function calling) is not supported by unicorn serve`, 'tools', 'unsupported_parameter');
  }
  const rf = body['response_format'];
  if (isObject(rf) && rf['type'] !== undefined && rf['type'] !== 'text') {
    throw new ApiError(
      400,
      `'response_format' ${JSON.stringify(rf['type'])} is not supported: unicorn serve answers in plain text`,
      'response_format',
      'unsupported_parameter',
    );
  }
  const lb = body['logit_bias'];
  if (isObject(lb) && Object.keys(lb).length > 0)
    throw new ApiError(400, `'logit_bias' is not supported by unicorn serve`, 'logit_bias', 'unsupported_parameter');

  const sampling: { -readonly [K in keyof SamplingOptions]?: SamplingOptions[K] } = {};
  if (temperature !== undefined) sampling.temperature = temperature;
  if (topP !== undefined) sampling.topP = topP;
  if (topK !== undefined) sampling.topK = topK;
  if (minP !== undefined) sampling.minP = minP;
  if (repetition !== undefined) sampling.repetitionPenalty = repetition;
  if (presence !== undefined) sampling.presencePenalty = presence;
  if (frequency !== undefined) sampling.frequencyPenalty = frequency;
  // OpenAI takes any 64-bit seed; the generator has 32 bits of state.
  if (seed !== undefined) sampling.seed = ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32;
  return { model, sampling, stream, includeUsage, maxTokens, stop };
}

function bodyObject(body: unknown): Json {
  if (!isObject(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  return body;
}

/** A message's content: a string, or text parts (images are refused: the model reads text only). */
function content(v: unknown, at: string): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    return v
      .map((part, j) => {
        if (!isObject(part)) throw new ApiError(400, `'${at}[${j}]' must be a content part object`, `${at}[${j}]`, 'invalid_type');
        if (part['type'] === 'text' && typeof part['text'] === 'string') return part['text'];
        if (part['type'] === 'image_url' || part['type'] === 'input_audio' || part['type'] === 'file') {
          throw new ApiError(
            400,
            `'${at}[${j}]': ${String(part['type'])} parts are not supported: unicorn runs the text model only`,
            `${at}[${j}]`,
            'unsupported_content',
          );
        }
        throw new ApiError(400, `'${at}[${j}]' must be {"type": "text", "text": "..."}`, `${at}[${j}]`, 'invalid_type');
      })
      .join('\n');
  }
  throw new ApiError(400, `'${at}' must be a string or an array of content parts, got ${describe(v)}`, at, 'invalid_type');
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

export function parseChatRequest(raw: unknown): ParsedRequest {
  const body = bodyObject(raw);
  const c = common(body);
  const m = body['messages'];
  if (!Array.isArray(m))
    throw new ApiError(400, `'messages' is required: an array of {role, content}`, 'messages', m === undefined ? 'missing_required_parameter' : 'invalid_type');
  if (m.length === 0) throw new ApiError(400, `'messages' must hold at least one message`, 'messages', 'invalid_value');
  const messages: ChatMessage[] = m.map((msg, i) => {
    const at = `messages[${i}]`;
    if (!isObject(msg)) throw new ApiError(400, `'${at}' must be an object with role and content`, at, 'invalid_type');
    const role = msg['role'];
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new ApiError(
        400,
        `'${at}.role' must be one of system, developer, user, assistant${role === 'tool' || role === 'function' ? ' (tool messages need function calling, which unicorn serve does not support)' : ''}, got ${describe(role)}`,
        `${at}.role`,
        'invalid_value',
      );
    }
    return { role: role === 'developer' ? 'system' : role, content: content(msg['content'], `${at}.content`) };
  });
  return {
    endpoint: 'chat',
    model: c.model,
    sampling: c.sampling,
    stream: c.stream,
    includeUsage: c.includeUsage,
    echo: false,
    completion: { prompt: '', chat: true, messages, maxTokens: c.maxTokens, stop: c.stop },
  };
}

export function parseCompletionRequest(raw: unknown): ParsedRequest {
  const body = bodyObject(raw);
  const c = common(body);
  let p = body['prompt'];
  // One prompt: a string, or token ids; a batch of one is accepted as that one.
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: string | number[];
  if (typeof p === 'string') prompt = p;
  else if (Array.isArray(p) && p.length > 0 && p.every(isInt)) prompt = p;
  else if (Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === 'string' || Array.isArray(x)))
    throw new ApiError(400, `'prompt' holds ${p.length} prompts: unicorn serve takes one per request`, 'prompt', 'unsupported_value');
  else
    throw new ApiError(
      400,
      `'prompt' is required: a string or an array of token ids${p === undefined ? '' : `, got ${describe(p)}`}`,
      'prompt',
      p === undefined ? 'missing_required_parameter' : 'invalid_type',
    );
  if (typeof prompt === 'string' && prompt === '') throw new ApiError(400, `'prompt' is empty: there is nothing to continue`, 'prompt', 'invalid_value');
  const suffix = body['suffix'];
  if (typeof suffix === 'string' && suffix !== '')
    throw new ApiError(400, `'suffix' (fill in the middle) is not supported by unicorn serve`, 'suffix', 'unsupported_parameter');
  const echo = opt(body, 'echo', isBool, 'a boolean') ?? false;
  const bestOf = opt(body, 'best_of', isInt, 'a whole number');
  if (bestOf !== undefined && bestOf !== 1) throw new ApiError(400, `'best_of' must be 1`, 'best_of', 'unsupported_value');
  return {
    endpoint: 'completions',
    model: c.model,
    sampling: c.sampling,
    stream: c.stream,
    includeUsage: c.includeUsage,
    echo,
    completion: { prompt, chat: false, maxTokens: c.maxTokens, stop: c.stop },
  };
}

/** OpenAI's finish reasons: the model ended or a stop string matched -> stop; a limit -> length. */
export function finishReason(f: FinishReason): 'stop' | 'length' {
  return f === 'eos' || f === 'stop' ? 'stop' : 'length';
}

export function newId(endpoint: ParsedRequest['endpoint']): string {
  return `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export function usage(r: CompletionResult): Usage {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.tokens.length, total_tokens: r.promptTokens + r.tokens.length };
}

/** llama.cpp's `timings` extension, so tools that read it show speed. */
export function timings(r: CompletionResult): Record<string, number | null> {
  return {
    prompt_n: r.promptTokens,
    predicted_n: r.tokens.length,
    ttft_ms: r.timeToFirstTokenMs,
    prompt_per_second: r.prefillTokensPerSecond,
    predicted_per_second: r.decodeTokensPerSecond,
  };
}

/** Identity of one response: id, time, model, fingerprint; shared by all chunks of a stream. */
export interface ResponseHead {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly system_fingerprint: string;
}

export function fullResponse(req: ParsedRequest, head: ResponseHead, r: CompletionResult, echoed: string): Json {
  const finish = finishReason(r.finish);
  if (req.endpoint === 'chat') {
    return {
      ...head,
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: r.text, refusal: null }, logprobs: null, finish_reason: finish }],
      usage: usage(r),
      timings: timings(r),
    };
  }
  return {
    ...head,
    object: 'text_completion',
    choices: [{ index: 0, text: echoed + r.text, logprobs: null, finish_reason: finish }],
    usage: usage(r),
    timings: timings(r),
  };
}

/** One stream chunk: text (or the opening role), or the closing finish reason. */
export function chunk(req: ParsedRequest, head: ResponseHead, part: { text?: string; first?: boolean; finish?: 'stop' | 'length' }): Json {
  if (req.endpoint === 'chat') {
    const delta = part.finish !== undefined ? {} : { ...(part.first === true ? { role: 'assistant' } : {}), content: part.text ?? '' };
    return { ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: part.finish ?? null }] };
  }
  return { ...head, object: 'text_completion', choices: [{ index: 0, text: part.text ?? '', logprobs: null, finish_reason: part.finish ?? null }] };
}

/** The last chunk when the client asked for usage (stream_options.include_usage): no choices. */
export function usageChunk(req: ParsedRequest, head: ResponseHead, r: CompletionResult): Json {
  return { ...head, object: req.endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion', choices: [], usage: usage(r), timings: timings(r) };
}
