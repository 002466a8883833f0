/**
 * `unicorn chat <model>`: a terminal chat (Ink) when stdin and stdout are terminals; otherwise plain
 * line-by-line mode for pipes: each input line is a user turn (or a slash command), each reply is
 * printed as it is decoded.
 */
import * as readline from 'node:readline';
import { Command, Option } from 'commander';
import { kvCacheOption, positive } from '../ui/args.js';
import { render } from 'ink';
import { createElement } from 'react';
import { modelOrBundled } from '../engine/bundled.js';
import { UnicornError } from '../engine/errors.js';
import { Chat, LocalReplier } from '../engine/generate/chat.js';
import { ChatApp } from '../ui/chat-app.js';
import { RemoteReplier } from '../engine/server/client.js';
import type { KvCacheType } from '../engine/models/memory.js';
import { modelDirOf } from '../engine/models/model-dir.js';
import { escapeControl } from '../engine/text/escape.js';
import { openModelSource } from '../ui/model-source.js';
import { checkRunFlags, resolveSampling, samplingOptions, type SamplingFlags } from '../ui/sampling.js';

interface ChatFlags extends SamplingFlags {
  maxTokens: number;
  system?: string;
  ctx?: number;
  kvCache?: KvCacheType;
  gpu?: string;
  device: 'gpu' | 'cpu';
  plain?: boolean;
}

async function plain(chat: Chat): Promise<void> {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    if (line.startsWith('/')) {
      // A command that fails is a message; the conversation goes on.
      let r: ReturnType<Chat['command']>;
      try {
        r = chat.command(line);
      } catch (e) {
        process.stderr.write(`${escapeControl(line.split(/\s/)[0] ?? '')}: ${escapeControl(e instanceof Error ? e.message : String(e))}\n`);
        continue;
      }
      if (r.output !== '') process.stderr.write(`${r.output}\n`);
      if (r.exit === true) break;
      continue;
    }
    let stats: Awaited<ReturnType<Chat['send']>>['stats'];
    try {
      ({ stats } = await chat.send(line, { onText: (t) => process.stdout.write(t), shouldStop: () => false }));
    } catch (e) {
      // A turn the model cannot take (too long for the context...) is reported; the conversation goes on.
      if (!(e instanceof UnicornError)) throw e;
      process.stderr.write(`unicorn: ${escapeControl(e.message)}${e.hint === undefined ? '' : `\n  fix: ${escapeControl(e.hint)}`}\n`);
      continue;
    }
    process.stdout.write('\n');
    process.stderr.write(
      `[${stats.promptTokens} new prompt tokens (${stats.reusedTokens} cached) · TTFT ${stats.timeToFirstTokenMs.toFixed(0)} ms · ${stats.generatedTokens} tokens${stats.tokensPerSecond === null ? '' : ` at ${stats.tokensPerSecond.toFixed(1)} tok/s`} · ${stats.finish}]\n`,
    );
  }
}

export function chatCommand(): Command {
  return samplingOptions(new Command('chat'))
    .description('chat with a model in the terminal (line by line when piped)')
    .argument('[model]', 'model directory (with tokenizer.json and a chat template) or a cached Hub model name (org/name[@rev]); none: the bundled kjv-tiny')
    .option('-n, --max-tokens <n>', 'most tokens per reply', positive, 1024)
    .option('--system <text>', 'system message')
    .option('--ctx <n>', "context length in tokens (default: 4096 or the model's maximum)", positive)
    .addOption(kvCacheOption())
    .option('--gpu <index|name>', 'which GPU (default: $UNICORN_GPU, else the best one)')
    .addOption(new Option('--device <kind>', 'gpu, or cpu for the TypeScript reference path').choices(['gpu', 'cpu']).default('gpu'))
    .option('--plain', 'line-by-line mode even on a terminal')
    .action(async (given: string | undefined, flags: ChatFlags) => {
      // Bad flags and a path that is no model are refused before anything loads.
      checkRunFlags(flags);
      const modelDir = modelOrBundled(given);
      modelDirOf(modelDir);
      const talk = async (chat: Chat) => {
        if (flags.plain === true || !process.stdin.isTTY || !process.stdout.isTTY) {
          await plain(chat);
        } else {
          // Both ends are a terminal: interactive even where a CI variable is set (Ink would otherwise
          // print only the last frame, at exit).
          const app = render(createElement(ChatApp, { chat }), { exitOnCtrlC: false, interactive: true });
          await app.waitUntilExit();
        }
      };
      // A resident server holding this model (unicorn load --keep) answers without loading it again.
      const source = await openModelSource(modelDir, flags);
      try {
        const replier = source.kind === 'resident' ? new RemoteReplier(source.client, source.info.model) : new LocalReplier(source.runner);
        const defaults = source.kind === 'resident' ? source.info.defaults : source.runner.defaults;
        await talk(await new Chat(replier, resolveSampling(flags, defaults), flags.maxTokens, flags.system).init());
      } finally {
        source.close();
      }
    });
}
