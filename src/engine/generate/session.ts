/**
 * A conversation's state on a backend: the tokens whose keys and values are in the KV cache. A new
 * prompt reuses the longest common prefix with what is cached (multi-turn chat prefills only the new
 * turn), then prefills the rest in batches, then decodes token by token.
 */
import { UnicornError } from '../errors.js';
import type { Backend, StepResult } from '../models/backend.js';
import { Sampler, type SamplingOptions, outputFor } from './sampler.js';
import { StreamDecoder, type TextCodec } from '../text/tokenizer.js';

export class ContextFullError extends UnicornError {}

/** What to do about a prompt longer than the context: a larger --ctx where the model takes one. */
function contextHint(ctx: number, maxPositions: number): string {
  return ctx < maxPositions ? `raise --ctx (this model takes up to ${maxPositions}) or shorten the prompt` : 'shorten the prompt';
}

/**
 * Refuses a prompt that cannot fit the context, before it is tokenized: by its length alone
 * (TextCodec.minTokens, a sound lower bound on its token count), so a prompt of megabytes is
 * refused at once instead of tokenized for minutes. A prompt that passes may still be refused once
 * tokenized (Session.ingest checks the exact count). `unicorn run`, chat turns, the resident server
 * and the HTTP API call it on the text they are about to encode; it throws a ContextFullError.
 */
export function checkPromptLength(codec: Pick<TextCodec, 'minTokens'>, text: string, ctx: number, maxPositions: number = ctx): void {
  const atLeast = codec.minTokens(text, ctx);
  if (atLeast > ctx) {
    throw new ContextFullError(`the prompt is at least ${atLeast} tokens (${text.length} characters), longer than the context of ${ctx}`, {
      hint: contextHint(ctx, maxPositions),
    });
  }
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'context' | 'aborted';

export interface GenerateOptions {
  readonly maxTokens: number;
  readonly sampling: SamplingOptions;
  readonly eosIds: readonly number[];
  readonly stop?: readonly string[];
  /** Called with each piece of text as it becomes final (never a partial character or stop string). */
  readonly onText?: (text: string) => void;
  /** Checked before each decode step; true stops generation (the text so far is kept). */
  readonly shouldStop?: () => boolean;
}

export interface Timings {
  /** Prompt tokens actually computed (the cached prefix is not). */
  readonly promptTokens: number;
  readonly reusedTokens: number;
  readonly prefillSeconds: number;
  /** From the call until the first generated token is known. */
  readonly timeToFirstToken: number;
  readonly generatedTokens: number;
  /** One-token steps run after the first token (each yields one more); decode tok/s = steps / seconds. */
  readonly decodeSteps: number;
  readonly decodeSeconds: number;
}

export interface Generation {
  readonly text: string;
  readonly tokens: number[];
  readonly finish: FinishReason;
  readonly timings: Timings;
}

export class Session {
  /** Tokens whose keys and values the cache holds, position by position. */
  private cached: number[] = [];

  constructor(
    readonly backend: Backend,
    private readonly codec?: { decode(ids: readonly number[], skipSpecial?: boolean): string },
  ) {}

  get contextUsed(): number {
    return this.cached.length;
  }

  reset(): void {
    this.cached = [];
  }

  /**
   * Makes the cache hold `ids` and returns the last token's result. Reuses the longest common
   * prefix with the cache when the backend can drop the rest (sliding-window layers keep a ring
   * that only survives a short rewind); always recomputes at least the last token.
   */
  ingest(ids: readonly number[], output: Parameters<Backend['step']>[2]): { result: StepResult; computed: number; reused: number } {
    const b = this.backend;
    if (ids.length === 0) throw new RangeError('an empty prompt: nothing to continue from');
    if (ids.length > b.ctx) {
      throw new ContextFullError(`the prompt is ${ids.length} tokens, longer than the context of ${b.ctx}`, {
        hint: contextHint(b.ctx, b.spec.maxPositionEmbeddings),
      });
    }
    let keep = 0;
    while (keep < this.cached.length && keep < ids.length - 1 && this.cached[keep] === ids[keep]) keep++;
    if (this.cached.length - keep > b.rewindLimit) keep = 0;
    let result: StepResult = {};
    for (let start = keep; start < ids.length; start += b.batch) {
      const chunk = ids.slice(start, Math.min(ids.length, start + b.batch));
      const last = start + chunk.length === ids.length;
      result = b.step(chunk, start, last ? output : { kind: 'none' });
      this.cached = ids.slice(0, start + chunk.length);
    }
    return { result, computed: ids.length - keep, reused: keep };
  }

  /** Continues `prompt` (token ids, the whole conversation so far) until a stop condition. */
  generate(prompt: readonly number[], o: GenerateOptions): Generation {
    const it = this.steps(prompt, o);
    for (;;) {
      const r = it.next();
      if (r.done === true) return r.value;
    }
  }

  /**
   * The same, giving the event loop a turn after every token (a terminal UI redraws and reads keys
   * in between; `shouldStop` sees them).
   */
  async generateAsync(prompt: readonly number[], o: GenerateOptions): Promise<Generation> {
    const it = this.steps(prompt, o);
    for (;;) {
      const r = it.next();
      if (r.done === true) return r.value;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Generation as a sequence of steps: yields after the prompt and after each token. */
  private *steps(prompt: readonly number[], o: GenerateOptions): Generator<void, Generation> {
    const t0 = performance.now();
    const sampler = new Sampler(o.sampling);
    const output = outputFor(o.sampling, this.backend.maxTopK, this.backend.spec.vocabSize);
    const { result, computed, reused } = this.ingest(prompt, output);
    const t1 = performance.now();
    yield;
    const history = [...prompt];
    const generated: number[] = [];
    const stream = this.codec === undefined ? undefined : new StreamDecoder(this.codec);
    // An empty stop string would match at once (stop after one token): it means no stop string.
    const stops = (o.stop ?? []).filter((s) => s !== '');
    const holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
    let text = '';
    let emitted = 0;
    let finish: FinishReason = 'length';
    let ttft = 0;
    let r = result;
    let decodeStart = t1;
    let steps = 0;
    const emit = (upTo: number) => {
      if (upTo > emitted) {
        o.onText?.(text.slice(emitted, upTo));
        emitted = upTo;
      }
    };
    while (generated.length < o.maxTokens) {
      const id = sampler.sample(r, history);
      if (generated.length === 0) {
        ttft = (performance.now() - t0) / 1000;
        decodeStart = performance.now();
      }
      if (o.eosIds.includes(id)) {
        finish = 'eos';
        break;
      }
      generated.push(id);
      history.push(id);
      if (stream !== undefined) {
        text += stream.push(id);
        const hit = stops.map((s) => text.indexOf(s, Math.max(0, emitted - s.length + 1))).filter((i) => i >= 0);
        if (hit.length > 0) {
          text = text.slice(0, Math.min(...hit));
          emit(text.length);
          finish = 'stop';
          break;
        }
        emit(Math.max(emitted, text.length - holdBack));
      }
      if (generated.length >= o.maxTokens) break;
      if (history.length >= this.backend.ctx) {
        finish = 'context';
        break;
      }
      if (o.shouldStop?.() === true) {
        finish = 'aborted';
        break;
      }
      r = this.backend.step([id], history.length - 1, output);
      steps++;
      this.cached = history.slice();
      yield;
    }
    if (stream !== undefined && finish !== 'stop') {
      text += stream.flush();
      emit(text.length);
    }
    const end = performance.now();
    return {
      text,
      tokens: generated,
      finish,
      timings: {
        promptTokens: computed,
        reusedTokens: reused,
        prefillSeconds: (t1 - t0) / 1000,
        timeToFirstToken: ttft,
        generatedTokens: generated.length,
        decodeSteps: steps,
        decodeSeconds: steps > 0 ? (end - decodeStart) / 1000 : 0,
      },
    };
  }
}
