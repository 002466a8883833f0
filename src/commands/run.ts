/** `unicorn run <model> "<prompt>"`: one-shot generation, streamed to stdout; timings on stderr. */
import { Command, Option } from 'commander';
import { collect, count, number } from '../ui/args.js';
import ora from 'ora';
import { looksLikeModel, modelOrBundled } from '../engine/bundled.js';
import { UnicornError } from '../engine/errors.js';
import { type Runner, type RunnerOptions, openRunner } from '../engine/generate/runner.js';
import { checkPromptLength } from '../engine/generate/session.js';
import { type SamplingOptions, resolveSampling as resolve } from '../engine/generate/sampler.js';
import { type CompletionRequest, type CompletionResult, complete } from '../engine/generate/complete.js';
import { modelDirOf } from '../engine/models/model-dir.js';
import { ResidentClient } from '../engine/server/client.js';
import { formatBytes } from '../ui/format.js';


/** The sampling flags both run and chat take. */
export interface SamplingFlags {
  temp?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

/** Adds the sampling flags to a command. */
export function samplingOptions(c: Command): Command {
  return c
    .option('--temp <t>', 'temperature (0 = greedy)', number)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', count)
    .option('--top-p <p>', 'keep the smallest set with this much probability (1 = off)', number)
    .option('--min-p <p>', 'drop tokens below p x the best one\'s probability (0 = off)', number)
    .option('--repeat-penalty <r>', 'penalise tokens seen in the last --repeat-last-n (1 = off)', number)
    .option('--repeat-last-n <n>', 'window for the repetition penalty', count)
    .option('--seed <s>', 'random seed (same seed, same text); default: random, printed', count);
}

/** Sampling from the flags, then the model's generation_config.json, then llama.cpp's defaults. */
export function resolveSampling(flags: SamplingFlags, d: Partial<SamplingOptions>): SamplingOptions {
  const asked: { -readonly [K in keyof SamplingOptions]?: SamplingOptions[K] } = {};
  if (flags.temp !== undefined) asked.temperature = flags.temp;
  if (flags.topK !== undefined) asked.topK = flags.topK;
  if (flags.topP !== undefined) asked.topP = flags.topP;
  if (flags.minP !== undefined) asked.minP = flags.minP;
  if (flags.repeatPenalty !== undefined) asked.repetitionPenalty = flags.repeatPenalty;
  if (flags.repeatLastN !== undefined) asked.repeatLastN = flags.repeatLastN;
  if (flags.seed !== undefined) asked.seed = flags.seed;
  try {
    return resolve(asked, d);
  } catch (e) {
    throw new UnicornError(`sampling: ${e instanceof Error ? e.message : String(e)}`);
  }
}

interface RunFlags extends SamplingFlags {
  maxTokens: number;
  chat?: boolean;
  system?: string;
  stop?: string[];
  templateVar?: string[];
  ctx?: number;
  gpu?: string;
  device: 'gpu' | 'cpu';
  json?: boolean;
}

export function runCommand(): Command {
  return samplingOptions(new Command('run'))
    .description('generate a continuation of a prompt (streamed to stdout; timings on stderr)')
    .argument('[model]', 'model directory (config.json, *.safetensors, tokenizer.json); none: the bundled kjv-tiny')
    .argument('[prompt]', 'the prompt; "-" or none reads it from stdin')
    .option('-n, --max-tokens <n>', 'most tokens to generate', count, 256)
    .option('--chat', 'wrap the prompt in the model\'s chat template as a user turn')
    .option('--system <text>', 'system message (with --chat)')
    .option('--stop <text>', 'stop when this text appears (repeatable)', collect)
    .option('--template-var <name=value>', 'extra chat-template variable, e.g. enable_thinking=false (repeatable)', collect)
    .option('--ctx <n>', 'context length in tokens (default: 4096 or the model\'s maximum)', count)
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

/**
 * Sampling flags checked on their own (the model's generation_config.json only fills in what was
 * not asked), and stop strings: both before the model loads, so a typo costs no loading time.
 */
export function checkRunFlags(flags: SamplingFlags & { stop?: string[] }): void {
  resolveSampling(flags, {});
  if (flags.stop?.some((s) => s === '') === true) {
    throw new UnicornError('--stop \'\': an empty stop string would stop at once', { hint: 'give the text to stop at, e.g. --stop "\\n\\n"' });
  }
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
    try { value = JSON.parse(raw); } catch { /* a plain string */ }
    out[item.slice(0, eq)] = value;
  }
  return out;
}

export function load(modelDir: string, flags: { device: 'gpu' | 'cpu'; gpu?: string; ctx?: number }, beforeWeights?: RunnerOptions['beforeWeights']): Runner {
  const spinner = ora({ text: `opening ${modelDir}`, stream: process.stderr }).start();
  const t0 = performance.now();
  try {
    const runner = openRunner(modelDir, {
      device: flags.device, ...(flags.gpu === undefined ? {} : { gpu: flags.gpu }), ...(flags.ctx === undefined ? {} : { ctx: flags.ctx }),
      ...(beforeWeights === undefined ? {} : { beforeWeights }),
      onLoad: (p) => {
        const s = (performance.now() - t0) / 1000;
        const rate = p.done / Math.max(s, 1e-3);
        spinner.text = `loading weights ${formatBytes(p.done)} / ${formatBytes(p.total)} · ${formatBytes(rate)}/s · ETA ${((p.total - p.done) / Math.max(rate, 1)).toFixed(0)} s`;
      },
    });
    const where = runner.device === null ? 'CPU (TypeScript reference)' : runner.device.info.name;
    spinner.succeed(`${modelDir}: ${formatBytes(runner.loadedBytes)} on ${where} in ${runner.loadSeconds.toFixed(2)} s · context ${runner.backend.ctx}`);
    return runner;
  } catch (e) {
    spinner.fail(`could not load ${modelDir}`);
    throw e;
  }
}

async function run(modelDir: string, prompt: string, flags: RunFlags): Promise<void> {
  const out = flags.json === true ? undefined : process.stdout;
  const request = (defaults: Partial<SamplingOptions>): CompletionRequest => ({
    prompt, chat: flags.chat === true, sampling: resolveSampling(flags, defaults), maxTokens: flags.maxTokens, stop: flags.stop ?? [],
    ...(flags.system === undefined ? {} : { system: flags.system }), ...(flags.templateVar === undefined ? {} : { templateVars: templateVars(flags.templateVar) }),
  });
  let req: CompletionRequest;
  let r: CompletionResult;
  // A resident server holding this model (unicorn load --keep) answers without loading it again.
  const client = flags.device === 'gpu' ? await ResidentClient.connect(modelDir) : null;
  if (client !== null) {
    try {
      const info = await client.info();
      process.stderr.write(`using the resident ${info.model} (pid ${info.pid}, ${info.device})\n`);
      req = request(info.defaults);
      r = await client.complete(req, (t) => out?.write(t));
    } finally {
      client.close();
    }
  } else {
    // A plain prompt too long for the context is refused before the weights load (complete() checks
    // again, chat prompts included, on the text it encodes).
    const runner = load(modelDir, flags, (codec, ctx, model) => {
      if (codec !== null && flags.chat !== true) checkPromptLength(codec, prompt, ctx, model.spec.maxPositionEmbeddings);
    });
    try {
      req = request(runner.defaults);
      r = await complete(runner, req, (t) => out?.write(t));
    } finally {
      runner.close();
    }
  }
  const stats = {
    model: modelDir, device: r.device, seed: req.sampling.seed, finish: r.finish, promptTokens: r.promptTokens, generatedTokens: r.tokens.length,
    timeToFirstTokenMs: r.timeToFirstTokenMs, prefillTokensPerSecond: r.prefillTokensPerSecond, decodeTokensPerSecond: r.decodeTokensPerSecond,
  };
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify({ text: r.text, tokens: r.tokens, sampling: req.sampling, ...stats })}\n`);
  } else {
    if (!r.text.endsWith('\n')) out?.write('\n');
    const why = { eos: 'end of text', stop: 'stop string', length: `--max-tokens ${flags.maxTokens}`, context: `context full (${r.contextLimit} tokens)`, aborted: 'stopped' }[r.finish];
    process.stderr.write(
      `\n${r.promptTokens} prompt tokens · time to first token ${stats.timeToFirstTokenMs} ms · prefill ${stats.prefillTokensPerSecond ?? '-'} tok/s · ` +
      `${r.tokens.length} tokens at ${stats.decodeTokensPerSecond ?? '-'} tok/s · ${why} · seed ${req.sampling.seed}\n`,
    );
  }
}
