/** `unicorn bench [model]`: prefill and decode speed against the bandwidth roofline measured in the same run. */
import { spinner as startSpinner } from '../ui/spinner.js';
import { Command } from 'commander';
import { benchModel, renderBench } from '../engine/bench.js';
import { modelOrBundled } from '../engine/bundled.js';
import { kvCacheOption, positive } from '../ui/args.js';
import type { KvCacheType } from '../engine/models/memory.js';

interface BenchFlags {
  prompt: number;
  tokens: number;
  ctx?: number;
  kvCache?: KvCacheType;
  gpu?: string;
  profile?: boolean;
  json?: boolean;
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('prefill and decode tok/s on the GPU, against the bandwidth roofline (copy rate / bytes per token) measured in the same run')
    .argument('[model]', 'model directory or cached Hub model name (org/name[@rev]); none: the bundled kjv-tiny')
    .option('-p, --prompt <n>', 'prompt tokens (random ids)', positive, 512)
    .option('-n, --tokens <n>', 'tokens to generate', positive, 128)
    .option('--ctx <n>', 'context length (default: prompt + tokens + 1)', positive)
    .addOption(kvCacheOption())
    .option('--gpu <index|name>', 'which GPU (default: $UNICORN_GPU, else the best one)')
    .option('--profile', "GPU time per kernel of one decode step and of the prompt's last prefill batch (timestamp queries)")
    .option('--json', 'print the report as JSON')
    .action((given: string | undefined, flags: BenchFlags) => {
      const model = modelOrBundled(given);
      const spinner = startSpinner('starting', { json: flags.json === true });
      try {
        const r = benchModel(model, {
          promptTokens: flags.prompt,
          genTokens: flags.tokens,
          profile: flags.profile === true,
          ...(flags.ctx === undefined ? {} : { ctx: flags.ctx }),
          ...(flags.kvCache === undefined ? {} : { kvCache: flags.kvCache }),
          ...(flags.gpu === undefined ? {} : { gpu: flags.gpu }),
          onStage: (what) => {
            spinner.text = what;
          },
        });
        spinner.stop();
        process.stdout.write(flags.json === true ? `${JSON.stringify(r)}\n` : `${renderBench(r)}\n`);
      } catch (e) {
        spinner.fail('benchmark failed');
        throw e;
      }
    });
}
