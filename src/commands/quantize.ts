/** `unicorn quantize <model dir> <out dir> --scheme int8|int4|mixed`: a smaller copy of a model, with a quality report. */
import { resolveModelArg } from '../engine/hub/model-arg.js';
import { spinner as startSpinner } from '../ui/spinner.js';
import { Command, Option } from 'commander';
import { positive } from '../ui/args.js';
import { Device } from '../engine/vulkan/device.js';
import { type QuantScheme, defaultWorkers, quantizeModel } from '../engine/quant/quantize-model.js';
import { qualityReport } from '../engine/quant/quality.js';
import { DEFAULT_INT4_GROUP, INT4_GROUPS } from '../engine/quant/layouts.js';
import { formatBytes } from '../ui/format.js';

interface Flags {
  scheme: QuantScheme;
  group: string;
  workers?: number;
  force?: boolean;
  eval?: boolean;
  shardSize?: number;
  gpu?: string;
  json?: boolean;
}

/** Whether a real GPU is there for the quality report (lavapipe would take long on big models). */
function gpuPresent(): boolean {
  try {
    const d = Device.open();
    const real = d.info.type !== 'cpu';
    d.destroy();
    return real;
  } catch {
    return false;
  }
}

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description('write an INT8 / INT4 / mixed copy of a model, with a quality report (KL, top-1) against the original')
    .argument('<model>', 'source model directory (bf16, f16 or f32 safetensors), or a Hub model name (org/name[@rev]) in the cache')
    .argument('<out>', 'output directory (must not exist unless --force)')
    .addOption(
      new Option('--scheme <scheme>', 'int8: every projection INT8 per row; int4: INT4 grouped; mixed: attention INT8, MLP INT4, embedding INT8')
        .choices(['int8', 'int4', 'mixed'])
        .default('mixed'),
    )
    .addOption(new Option('--group <n>', 'INT4 group size').choices(INT4_GROUPS.map(String)).default(String(DEFAULT_INT4_GROUP)))
    .option('--workers <n>', `worker threads (default: one per core, ${defaultWorkers()} here)`, positive)
    .option('--force', 'replace the output directory if it exists and unicorn wrote it (never the source, nor a folder holding it)')
    .option('--eval', 'run the quality report (default: on when a GPU is present)')
    .option('--no-eval', 'skip the quality report')
    .option('--shard-size <GB>', 'shard size in GB (default 4)', positive)
    .option('--gpu <index|name>', 'GPU for the quality report')
    .option('--json', 'print the report as JSON')
    .action(async (given: string, out: string, flags: Flags) => {
      const src = resolveModelArg(given);
      const spinner = startSpinner(`planning ${src}`, { json: flags.json === true });
      const t0 = performance.now();
      const evaluate = flags.eval ?? gpuPresent();
      let quality: ReturnType<typeof qualityReport> | null = null;
      try {
        const report = await quantizeModel(src, out, {
          scheme: flags.scheme,
          group: Number(flags.group),
          workers: flags.workers ?? defaultWorkers(),
          force: flags.force === true,
          ...(flags.shardSize === undefined ? {} : { shardBytes: flags.shardSize * 1e9 }),
          onProgress: (p) => {
            const s = (performance.now() - t0) / 1000;
            const rate = p.doneBytes / Math.max(s, 1e-3);
            spinner.text = `quantizing: ${p.tensors}/${p.totalTensors} tensors · ${formatBytes(p.doneBytes)} / ${formatBytes(p.totalBytes)} · ${formatBytes(rate)}/s · ETA ${((p.totalBytes - p.doneBytes) / Math.max(rate, 1)).toFixed(0)} s`;
          },
          ...(evaluate
            ? {
                evaluate: async (dir: string) => {
                  spinner.text = 'quality report: the original and the quantized model on the same prompts';
                  quality = qualityReport(src, dir, flags.gpu === undefined ? {} : { gpu: flags.gpu });
                  return JSON.stringify({
                    mean_kl: +quality.meanKl.toExponential(3),
                    max_kl: +quality.maxKl.toExponential(3),
                    top1: +quality.top1.toFixed(4),
                    positions: quality.positions,
                  });
                },
              }
            : {}),
        });
        spinner.succeed(
          `${out}: ${flags.scheme}${flags.scheme === 'int8' ? '' : ` (group ${flags.group})`} in ${report.seconds.toFixed(1)} s${report.evalSeconds > 0.05 ? ` (+ ${report.evalSeconds.toFixed(1)} s quality report)` : ''}`,
        );
        const q = quality as ReturnType<typeof qualityReport> | null;
        for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify({ ...report, quality: q })}\n`);
          return;
        }
        const ratio = report.sourceBytes / report.outputBytes;
        console.log(
          `size       ${formatBytes(report.sourceBytes)} -> ${formatBytes(report.outputBytes)} (${ratio.toFixed(2)}x smaller), ${report.shards} shard${report.shards === 1 ? '' : 's'}`,
        );
        console.log(
          `tensors    ${report.tensors.quantized} quantized, ${report.tensors.kept} kept as they were (norms, biases)${report.skippedVision > 0 ? `; vision tower (${report.skippedVision} tensors) not written: unicorn runs the text model` : ''}`,
        );
        console.log(`speed      ${formatBytes(report.sourceBytes / report.seconds)}/s of source with ${flags.workers ?? defaultWorkers()} workers`);
        console.log(`source     sha256 ${report.sourceSha256.slice(0, 16)}… (over every tensor read)`);
        if (q !== null) {
          console.log(
            `quality    mean KL ${q.meanKl.toExponential(2)} · max KL ${q.maxKl.toExponential(2)} · top-1 agreement ${(100 * q.top1).toFixed(1)}% over ${q.positions} positions (stored in the metadata)`,
          );
        } else {
          console.log('quality    not measured (no GPU, or --no-eval)');
        }
      } catch (e) {
        spinner.fail(`could not quantize ${src}`);
        throw e;
      }
    });
}
