/**
 * A conversation with a model, independent of how it is shown: messages rendered with the model's
 * chat template, each turn continued from the cached prefix (only the new turn is prefilled), slash
 * commands, and the numbers a status line shows. `unicorn chat` drives it from an Ink UI or, when
 * piped, line by line.
 */
import { UnicornError } from '../errors.js';
import { writeFileAtomic } from '../formats/atomic.js';
import type { ChatMessage } from '../text/tokenizer.js';
import type { Runner } from './runner.js';
import type { SamplingOptions } from './sampler.js';
import { type FinishReason, type Generation, checkPromptLength } from './session.js';

export interface TurnStats {
  readonly promptTokens: number;
  readonly reusedTokens: number;
  readonly generatedTokens: number;
  readonly timeToFirstTokenMs: number;
  readonly tokensPerSecond: number | null;
  readonly finish: FinishReason;
}

export interface ChatStatus {
  readonly contextUsed: number;
  readonly contextLimit: number;
  readonly gpuBytes: number | null;
  readonly temperature: number;
  readonly last: TurnStats | null;
}

/** What the UI needs from a chat (the Ink app is tested against a fake one). */
export interface ChatEngine {
  readonly model: string;
  send(text: string, o: { onText: (t: string) => void; shouldStop: () => boolean }): Promise<{ reply: string; stats: TurnStats }>;
  command(line: string): CommandResult;
  status(): ChatStatus;
}

export interface CommandResult {
  readonly output: string;
  readonly exit?: boolean;
}

export const HELP = [
  '/reset           forget the conversation (keeps the system message)',
  '/system <text>   set the system message (and reset)',
  '/temp <x>        set the temperature (0 = greedy)',
  '/save <file>     write the conversation as JSON',
  '/help            this list',
  '/exit            leave (also Ctrl-C twice, or Ctrl-D when piped)',
].join('\n');

/**
 * Where replies come from: the model loaded in this process, or a resident server holding it.
 * Given the whole conversation (the last message the user's), streams the reply.
 */
export interface Replier {
  readonly model: string;
  reply(
    messages: readonly ChatMessage[],
    o: { sampling: SamplingOptions; maxTokens: number; onText: (t: string) => void; shouldStop: () => boolean },
  ): Promise<{ reply: string; stats: TurnStats }>;
  /** Forget the cached conversation. */
  reset(): Promise<void> | void;
  context(): Promise<{ used: number; limit: number; gpuBytes: number | null }> | { used: number; limit: number; gpuBytes: number | null };
}

/** Statistics of one generation, as the status line shows them. */
export function turnStats(g: Generation): TurnStats {
  const t = g.timings;
  return {
    promptTokens: t.promptTokens,
    reusedTokens: t.reusedTokens,
    generatedTokens: g.tokens.length,
    finish: g.finish,
    timeToFirstTokenMs: t.timeToFirstToken * 1000,
    tokensPerSecond: t.decodeSeconds > 0 ? t.decodeSteps / t.decodeSeconds : null,
  };
}

/** Replies from the model loaded in this process (also what a resident server runs). */
export class LocalReplier implements Replier {
  constructor(private readonly runner: Runner) {
    if (runner.codec === null) throw new UnicornError(`${runner.model.dir}: no tokenizer.json, so there is no text to chat with`);
    if (runner.codec.chatTemplate === null) {
      throw new UnicornError(`${runner.model.dir}: the model has no chat template`, {
        hint: 'it is probably a base model: use `unicorn run` with a plain prompt',
      });
    }
  }

  get model(): string {
    return this.runner.model.dir;
  }

  async reply(
    messages: readonly ChatMessage[],
    o: { sampling: SamplingOptions; maxTokens: number; onText: (t: string) => void; shouldStop: () => boolean },
  ): Promise<{ reply: string; stats: TurnStats }> {
    const codec = this.runner.codec!;
    const text = codec.renderChat(messages, { addGenerationPrompt: true });
    checkPromptLength(codec, text, this.runner.backend.ctx, this.runner.model.spec.maxPositionEmbeddings);
    const ids = codec.encode(text, false);
    const g = await this.runner.session.generateAsync(ids, {
      maxTokens: o.maxTokens,
      sampling: o.sampling,
      eosIds: this.runner.model.spec.eosTokenIds,
      onText: o.onText,
      shouldStop: o.shouldStop,
    });
    return { reply: g.text, stats: turnStats(g) };
  }

  reset(): void {
    this.runner.session.reset();
  }

  context(): { used: number; limit: number; gpuBytes: number | null } {
    return { used: this.runner.session.contextUsed, limit: this.runner.backend.ctx, gpuBytes: this.runner.gpuBytes() };
  }
}

export class Chat implements ChatEngine {
  private messages: ChatMessage[] = [];
  private system: string | undefined;
  private last: TurnStats | null = null;
  private ctx = { used: 0, limit: 0, gpuBytes: null as number | null };

  constructor(
    private readonly replier: Replier,
    private sampling: SamplingOptions,
    private readonly maxTokens: number,
    system?: string,
  ) {
    this.system = system;
  }

  /** Reads the context figures once before the first turn (a remote replier answers asynchronously). */
  async init(): Promise<this> {
    this.ctx = await this.replier.context();
    return this;
  }

  get model(): string {
    return this.replier.model;
  }

  private conversation(extra: ChatMessage[] = []): ChatMessage[] {
    return [...(this.system === undefined ? [] : [{ role: 'system', content: this.system }]), ...this.messages, ...extra];
  }

  async send(text: string, o: { onText: (t: string) => void; shouldStop: () => boolean }): Promise<{ reply: string; stats: TurnStats }> {
    const user = { role: 'user', content: text };
    const r = await this.replier.reply(this.conversation([user]), {
      sampling: { ...this.sampling, seed: (this.sampling.seed + this.messages.length) >>> 0 },
      maxTokens: this.maxTokens,
      onText: o.onText,
      shouldStop: o.shouldStop,
    });
    this.messages.push(user, { role: 'assistant', content: r.reply });
    this.last = r.stats;
    this.ctx = await this.replier.context();
    return r;
  }

  command(line: string): CommandResult {
    const [cmd, ...rest] = line.trim().split(/\s+/);
    const arg = line
      .trim()
      .slice((cmd ?? '').length)
      .trim();
    switch (cmd) {
      case '/reset':
        this.messages = [];
        void this.replier.reset();
        return { output: 'conversation cleared' };
      case '/system':
        this.system = arg === '' ? undefined : arg;
        this.messages = [];
        return { output: this.system === undefined ? 'system message removed; conversation cleared' : 'system message set; conversation cleared' };
      case '/temp': {
        const t = Number(arg);
        if (arg === '' || !Number.isFinite(t) || t < 0) return { output: `/temp needs a number >= 0 (now ${this.sampling.temperature})` };
        this.sampling = { ...this.sampling, temperature: t };
        return { output: `temperature ${t}` };
      }
      case '/save': {
        if (arg === '') return { output: '/save needs a file name' };
        // A file that cannot be written (no such folder, a full disk) is a message: the conversation stays.
        try {
          writeFileAtomic(arg, `${JSON.stringify({ model: this.model, sampling: this.sampling, messages: this.conversation() }, null, 2)}\n`);
        } catch (e) {
          if (e instanceof UnicornError) return { output: `not saved: ${e.message}; the conversation is still here` };
          throw e;
        }
        return { output: `saved ${this.conversation().length} messages to ${arg}` };
      }
      case '/help':
        return { output: HELP };
      case '/exit':
      case '/quit':
        return { output: '', exit: true };
      default:
        return { output: `unknown command ${cmd}${rest.length > 0 ? '' : ''}; /help lists them` };
    }
  }

  status(): ChatStatus {
    return { contextUsed: this.ctx.used, contextLimit: this.ctx.limit, gpuBytes: this.ctx.gpuBytes, temperature: this.sampling.temperature, last: this.last };
  }
}
