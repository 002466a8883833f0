/** The two things `unicorn serve` can put behind the API: the model loaded in this process, or a resident server's. */
import { complete } from '../generate/complete.js';
import type { Runner } from '../generate/runner.js';
import { RemoteError, ResidentClient } from '../server/client.js';
import type { ServerInfo } from '../server/protocol.js';
import { TextCodec } from '../text/tokenizer.js';
import type { ApiBackend, PromptShape } from './http.js';
import { ApiError } from './openai.js';

/**
 * The fewest tokens a prompt can be, for the API's refusal of prompts far past the context before they
 * are queued or tokenized: TextCodec.minTokens, the engine's sound lower bound (it never refuses a
 * prompt that fits). The codec comes lazily, on the first prompt longer than the context in
 * characters (a shorter one cannot be refused by it): the server starts as fast as before.
 */
function fewestTokens(ctx: () => number, codecOf: () => TextCodec | null): (p: PromptShape) => number {
  let codec: TextCodec | null | undefined;
  return (p) => {
    const chars = p.messages === undefined ? (typeof p.prompt === 'string' ? p.prompt.length : 0) : p.messages.reduce((n, m) => n + m.content.length, 0);
    if (chars <= ctx()) return 0;
    if (codec === undefined) codec = codecOf();
    if (codec === null) return 0;
    if (p.messages === undefined) return typeof p.prompt === 'string' ? codec.minTokens(p.prompt, ctx()) : 0;
    if (codec.chatTemplate === null) return 0;
    try {
      return codec.minTokens(codec.renderChat(p.messages, { addGenerationPrompt: true }), ctx());
    } catch {
      return 0; // a conversation the template refuses: the request fails with the template's own message
    }
  };
}

/** The codec of a model directory for the bound, or null where it has none that loads. */
function codecIn(dir: string): TextCodec | null {
  try {
    return TextCodec.load(dir);
  } catch {
    return null;
  }
}

export function localBackend(runner: Runner, modelId: string): ApiBackend {
  const codec = runner.codec;
  return {
    modelId,
    ctx: runner.backend.ctx,
    defaults: runner.defaults,
    chat: codec?.chatTemplate != null,
    complete: (req, onText, shouldStop) => complete(runner, req, onText, shouldStop),
    status: () =>
      Promise.resolve({ device: runner.device?.info.name ?? 'cpu', contextUsed: runner.session.contextUsed, gpuBytes: runner.gpuBytes(), resident: false }),
    fewestTokens: fewestTokens(
      () => runner.backend.ctx,
      () => codec,
    ),
  };
}

/**
 * A resident server's model: each request opens its own connection to the server that holds
 * `modelDir` now, so a server stopped or killed and loaded again is found again on the next request,
 * and a request while none holds the model is a 503 that says so (it used to be a 500 on a dead
 * connection for as long as `serve` ran). What the server reports (context, defaults, chat template)
 * is refreshed on every request and /health.
 */
export function residentBackend(modelDir: string, info: ServerInfo, modelId: string): ApiBackend {
  let current = info;
  const connect = async (): Promise<ResidentClient> => {
    let c: ResidentClient | null;
    try {
      c = await ResidentClient.connect(modelDir);
    } catch (e) {
      throw new ApiError(
        503,
        `the resident server of '${modelId}' cannot be reached: ${e instanceof Error ? e.message : String(e)}`,
        null,
        'model_unavailable',
      );
    }
    if (c === null) {
      throw new ApiError(
        503,
        `no resident server holds '${modelId}' any more (it was stopped, or it died): load it again with unicorn load --keep, or restart unicorn serve to load it in its own process`,
        null,
        'model_not_loaded',
      );
    }
    return c;
  };
  /** Errors of the connection (the server went away mid-request) are 503s; the server's own answers pass. */
  const gone = (e: unknown): unknown => {
    if (e instanceof RemoteError || e instanceof ApiError) return e;
    return new ApiError(
      503,
      `the resident server of '${modelId}' went away during the request (${e instanceof Error ? e.message : String(e)})`,
      null,
      'model_unavailable',
    );
  };
  return {
    modelId,
    get ctx() {
      return current.ctx;
    },
    get defaults() {
      return current.defaults;
    },
    get chat() {
      return current.chatTemplate === true;
    },
    async complete(req, onText, shouldStop) {
      const c = await connect();
      try {
        current = await c.info();
        return await c.complete(req, onText, shouldStop);
      } catch (e) {
        throw gone(e);
      } finally {
        c.close();
      }
    },
    async status() {
      const c = await connect();
      try {
        current = await c.info();
        return { device: current.device, contextUsed: current.contextUsed, gpuBytes: current.gpuBytes, resident: true };
      } catch (e) {
        throw gone(e);
      } finally {
        c.close();
      }
    },
    fewestTokens: fewestTokens(
      () => current.ctx,
      () => codecIn(modelDir),
    ),
  };
}
