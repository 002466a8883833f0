/** `unicorn run <model> "<prompt>"`: one-shot generation, streamed to stdout; timings on stderr. */
import { Command, Option } from 'commander';
import { collect, count, kvCacheOption } from '../ui/args.js';
import { looksLikeModel, modelOrBundled } from '../engine/bundled.js';
import { UnicornError } from '../engine/errors.js';
import { checkPromptLength } from '../engine/generate/session.js';
import type { SamplingOptions } from '../engine/generate/sampler.js';
import { type CompletionRequest, type CompletionResult, complete } from '../engine/generate/complete.js';
import type { KvCacheType } from '../engine/models/memory.js';
import { modelDirOf } from '../engine/models/model-dir.js';
import { openModelSource } from '../ui/model-source.js';
import { type SamplingFlags, checkRunFlags, resolveSampling, samplingOptions } from '../ui/sampling.js';
import { formatBytes } from '../ui/format.js';

interface RunFlags extends SamplingFlags {
  maxTokens: number;
  chat?: boolean;
  system?: string;
  stop?: string[];
  templateVar?: string[];
  ctx?: number;
  kvCache?: KvCacheType;
  gpu?: string;
  device: 'gpu' | 'cpu';
  json?: boolean;
}

export function runCommand(): Command {
  return samplingOptions(new Command('run'))
    .description('generate a continuation of a prompt (streamed to stdout; timings on stderr)')
    .argument('[model]', 'model directory (config.json, *.safetensors, tokenizer.json) or a cached Hub model name (org/name[@rev]); none: the bundled kjv-tiny')
    .argument('[prompt]', 'the prompt; "-" or none reads it from stdin')
    .option('-n, --max-tokens <n>', 'most tokens to generate', count, 256)
    .option('--chat', "wrap the prompt in the model's chat template as a user turn")
    .option('--system <text>', 'system message (with --chat)')
    .option('--stop <text>', 'stop when this text appears (repeatable)', collect)
    .option('--template-var <name=value>', 'extra chat-template variable, e.g. enable_thinking=false (repeatable)', collect)
    .option('--ctx <n>', "context length in tokens (default: 4096 or the model's maximum)", count)
    .addOption(kvCacheOption())
    .option('--gpu <index|name>', 'which GPU (default: $UNICORN_GPU, else the best one)')
    .addOption(new Option('--device <kind>', 'gpu, or cpu for the TypeScript reference path (slow; small models)').choices(['gpu', 'cpu']).default('gpu'))
    .option('--json', 'print one JSON object (text, tokens, timings) instead of streaming')
    .action(async (first: string | undefined, second: string | undefined, flags: RunFlags) => {
      // Bad flags are refused before anything is read or loaded.
      checkRunFlags(flags);
      // `unicorn run "a prompt"` (one argument that is not a path) and `unicorn run -` (the prompt on
      // stdin) run the bundled model.
      const bundled = first === undefined || (second === undefined && (first === '-' || !looksLikeModel(first)));
      const modelDir = modelOrBundled(bundled ? undefined : first);
      if (!bundled) modelDirOf(modelDir);
      const prompt = bundled ? first : second;
      const text = prompt === undefined || prompt === '-' ? await readStdin() : prompt;
      await run(modelDir, text, flags);
    });
}

/** The most a prompt on stdin may be; the prompt-length check refuses far less once tokenizing would start. */
export const MAX_STDIN_BYTES = 64 << 20;

/** Reads the prompt from stdin, refusing more than MAX_STDIN_BYTES (it is never all held in memory). */
async function readStdin(max = MAX_STDIN_BYTES): Promise<string> {
  if (process.stdin.isTTY) throw new UnicornError('no prompt given', { hint: 'unicorn run <model> "your prompt", or pipe the prompt in' });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of process.stdin) {
    total += (c as Buffer).byteLength;
    if (total > max) {
      process.stdin.destroy();
      throw new UnicornError(`the prompt on stdin is larger than ${formatBytes(max)}, far more than any context holds`, { hint: 'shorten the prompt' });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function templateVars(list: readonly string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UnicornError(`--template-var ${item}: expected name=value`);
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    out[item.slice(0, eq)] = value;
  }
  return out;
}

async function run(modelDir: string, prompt: string, flags: RunFlags): Promise<void> {
  const out = flags.json === true ? undefined : process.stdout;
  const request = (defaults: Partial<SamplingOptions>): CompletionRequest => ({
    prompt,
    chat: flags.chat === true,
    sampling: resolveSampling(flags, defaults),
    maxTokens: flags.maxTokens,
    stop: flags.stop ?? [],
    ...(flags.system === undefined ? {} : { system: flags.system }),
    ...(flags.templateVar === undefined ? {} : { templateVars: templateVars(flags.templateVar) }),
  });
  let req: CompletionRequest;
  let r: CompletionResult;
  // A resident server holding this model (unicorn load --keep) answers without loading it again; a
  // plain prompt too long for the context is refused before the weights load (complete() checks
  // again, chat prompts included, on the text it encodes).
  const source = await openModelSource(modelDir, flags, {
    beforeWeights: (codec, ctx, model) => {
      if (codec !== null && flags.chat !== true) checkPromptLength(codec, prompt, ctx, model.spec.maxPositionEmbeddings);
    },
  });
  try {
    req = request(source.kind === 'resident' ? source.info.defaults : source.runner.defaults);
    r = source.kind === 'resident' ? await source.client.complete(req, (t) => out?.write(t)) : await complete(source.runner, req, (t) => out?.write(t));
  } finally {
    source.close();
  }
  const stats = {
    model: modelDir,
    device: r.device,
    seed: req.sampling.seed,
    finish: r.finish,
    promptTokens: r.promptTokens,
    generatedTokens: r.tokens.length,
    timeToFirstTokenMs: r.timeToFirstTokenMs,
    prefillTokensPerSecond: r.prefillTokensPerSecond,
    decodeTokensPerSecond: r.decodeTokensPerSecond,
  };
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify({ text: r.text, tokens: r.tokens, sampling: req.sampling, ...stats })}\n`);
  } else {
    if (!r.text.endsWith('\n')) out?.write('\n');
    const why = {
      eos: 'end of text',
      stop: 'stop string',
      length: `--max-tokens ${flags.maxTokens}`,
      context: `context full (${r.contextLimit} tokens)`,
      aborted: 'stopped',
    }[r.finish];
    process.stderr.write(
      `\n${r.promptTokens} prompt tokens · time to first token ${stats.timeToFirstTokenMs} ms · prefill ${stats.prefillTokensPerSecond ?? '-'} tok/s · ` +
        `${r.tokens.length} tokens at ${stats.decodeTokensPerSecond ?? '-'} tok/s · ${why} · seed ${req.sampling.seed}\n`,
    );
  }
}
