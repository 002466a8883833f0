/**
 * One completion as `unicorn run` asks for it: a prompt (plain, or wrapped in the chat template),
 * sampling, limits; text streamed as it is decoded. Run in this process or by a resident server.
 */
import { UnicornError } from '../errors.js';
import type { ChatMessage } from '../text/tokenizer.js';
import type { Runner } from './runner.js';
import type { SamplingOptions } from './sampler.js';
import { type FinishReason, checkPromptLength } from './session.js';

export interface CompletionRequest {
  /** Plain text, or token ids (continued as given: no BOS is added). */
  readonly prompt: string | readonly number[];
  /** Wrap `prompt` in the chat template as one user turn (after `system`). */
  readonly chat: boolean;
  /** A whole conversation for the chat template (instead of prompt/system). */
  readonly messages?: readonly ChatMessage[];
  readonly system?: string;
  readonly templateVars?: Record<string, unknown>;
  readonly sampling: SamplingOptions;
  readonly maxTokens: number;
  readonly stop: readonly string[];
}

export interface CompletionResult {
  readonly text: string;
  readonly tokens: number[];
  readonly finish: FinishReason;
  readonly promptTokens: number;
  readonly contextLimit: number;
  readonly device: string;
  readonly timeToFirstTokenMs: number;
  readonly prefillTokensPerSecond: number | null;
  readonly decodeTokensPerSecond: number | null;
}

export async function complete(
  runner: Runner,
  req: CompletionRequest,
  onText: (t: string) => void,
  shouldStop: () => boolean = () => false,
): Promise<CompletionResult> {
  const codec = runner.codec;
  if (codec === null) throw new UnicornError(`${runner.model.dir}: no tokenizer.json, so text cannot be turned into tokens`);
  let ids: number[];
  if (req.messages !== undefined || req.chat) {
    if (typeof req.prompt !== 'string') throw new UnicornError('a chat turn is text, not token ids');
    const messages: readonly ChatMessage[] = req.messages ?? [
      ...(req.system === undefined ? [] : [{ role: 'system', content: req.system }]),
      { role: 'user', content: req.prompt },
    ];
    const text = codec.renderChat(messages, { addGenerationPrompt: true, extra: req.templateVars ?? {} });
    checkPromptLength(codec, text, runner.backend.ctx, runner.model.spec.maxPositionEmbeddings);
    ids = codec.encode(text, false);
  } else {
    if (req.system !== undefined || (req.templateVars !== undefined && Object.keys(req.templateVars).length > 0))
      throw new UnicornError('--system and --template-var need --chat');
    if (typeof req.prompt === 'string') {
      checkPromptLength(codec, req.prompt, runner.backend.ctx, runner.model.spec.maxPositionEmbeddings);
      ids = codec.encode(req.prompt, true);
    } else {
      const vocab = runner.model.spec.vocabSize;
      const bad = req.prompt.find((id) => !Number.isSafeInteger(id) || id < 0 || id >= vocab);
      if (bad !== undefined) throw new RangeError(`token id ${bad} is not in the vocabulary (0 to ${vocab - 1})`);
      ids = [...req.prompt];
    }
  }
  const g = await runner.session.generateAsync(ids, {
    maxTokens: req.maxTokens,
    sampling: req.sampling,
    eosIds: runner.model.spec.eosTokenIds,
    stop: req.stop,
    onText,
    shouldStop,
  });
  const t = g.timings;
  return {
    text: g.text,
    tokens: g.tokens,
    finish: g.finish,
    promptTokens: ids.length,
    contextLimit: runner.backend.ctx,
    device: runner.device === null ? 'cpu' : runner.device.info.name,
    timeToFirstTokenMs: +(t.timeToFirstToken * 1000).toFixed(1),
    prefillTokensPerSecond: t.prefillSeconds > 0 ? +(t.promptTokens / t.prefillSeconds).toFixed(1) : null,
    decodeTokensPerSecond: t.decodeSeconds > 0 ? +(t.decodeSteps / t.decodeSeconds).toFixed(1) : null,
  };
}
