/** `unicorn load <model>`: load a model into GPU memory and report placement, speed and a read-back check. */
import { spinner as startSpinner } from '../ui/spinner.js';
import { Command } from 'commander';
import { kvCacheOption, positive } from '../ui/args.js';
import { UnicornError } from '../engine/errors.js';
import { loadModel } from '../engine/load-report.js';
import { resolveModelArg } from '../engine/hub/model-arg.js';
import { type KvCacheType, checkKvCache } from '../engine/models/memory.js';
import { modelDirOf, readModelSpec } from '../engine/models/model-dir.js';
import { formatBytes, table } from '../ui/format.js';
import { startResident } from './resident.js';

export function loadCommand(): Command {
  return new Command('load')
    .description('load a model into GPU memory: placement per heap, GB/s against the file read rate, read-back check')
    .argument('<model>', 'model directory, or a Hub model name (org/name[@rev]) in the cache')
    .option('--gpu <index|name>', 'which GPU (default: $UNICORN_GPU, else the best one)')
    .option('--ctx <n>', 'context length the KV cache is planned for (fit check)', positive)
    .addOption(kvCacheOption('how the KV cache stores keys and values (fit check; with --keep, the cache the resident server makes)'))
    .option('--verify <n>', 'tensors read back and compared with the files', positive, 12)
    .option('--keep', 'leave the model resident in a background server that run and chat attach to (unicorn ps, unicorn stop)')
    .option('--json', 'print the report as JSON')
    .action(async (given: string, o: { gpu?: string; ctx?: number; kvCache?: KvCacheType; verify: number; json?: boolean; keep?: boolean }) => {
      const target = resolveModelArg(given);
      // A cache type the model's heads cannot take is refused from its config, before a server starts or a weight loads.
      if (o.kvCache !== undefined) checkKvCache(readModelSpec(modelDirOf(target)), o.kvCache);
      if (o.keep === true) {
        const spinner = startSpinner(`starting a resident server for ${target}`, { json: o.json === true });
        try {
          const opts = {
            ...(o.gpu === undefined ? {} : { gpu: o.gpu }),
            ...(o.ctx === undefined ? {} : { ctx: o.ctx }),
            ...(o.kvCache === undefined ? {} : { kvCache: o.kvCache }),
          };
          const info = await startResident(target, opts, (s) => {
            spinner.text = `loading ${target} in the resident server · ${s.toFixed(0)} s`;
          });
          spinner.succeed(
            `${info.model}: resident in pid ${info.pid} on ${info.device}, context ${info.ctx}, KV cache ${info.kvCache ?? 'f16'}: ${formatBytes(info.bytes)} loaded in ${info.loadSeconds.toFixed(2)} s (${(info.bytes / 1e9 / info.loadSeconds).toFixed(2)} GB/s); run and chat use it; unicorn stop unloads it`,
          );
          if (o.json === true) process.stdout.write(`${JSON.stringify(info)}\n`);
        } catch (e) {
          spinner.fail(`could not keep ${target} resident`);
          throw e;
        }
        return;
      }
      const spinner = startSpinner(`reading ${target}`, { json: o.json === true });
      const t0 = performance.now();
      let report;
      try {
        report = loadModel(target, {
          ...(o.gpu === undefined ? {} : { gpu: o.gpu }),
          ...(o.ctx === undefined ? {} : { ctx: o.ctx }),
          ...(o.kvCache === undefined ? {} : { kvCache: o.kvCache }),
          verifyTensors: o.verify,
          onProgress: (p) => {
            const s = (performance.now() - t0) / 1000;
            spinner.text = `loading ${formatBytes(p.done)} / ${formatBytes(p.total)} · ${p.tensors} tensors · ${formatBytes(p.done / Math.max(s, 1e-3))}/s`;
          },
        });
      } catch (e) {
        spinner.fail(`could not load ${target}`);
        throw e;
      }
      spinner.succeed(`${target}: ${formatBytes(report.bytes)} on ${report.device} in ${report.seconds.toFixed(2)} s`);
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else {
        console.log(
          `speed      ${report.gbPerSecond.toFixed(2)} GB/s; plain read of the same files ${report.fileReadGbPerSecond.toFixed(2)} GB/s (${((100 * report.gbPerSecond) / report.fileReadGbPerSecond).toFixed(0)}%)`,
        );
        console.log(
          `host RAM   peak ${formatBytes(report.peakRssBytes)} resident while loading${report.cpuDevice ? " (a CPU driver: its GPU memory is this process's RAM, counted here)" : ''}`,
        );
        console.log(
          `verified   ${report.verified.tensors} tensors (${formatBytes(report.verified.bytes)}) read back from the GPU: ${report.verified.mismatches.length === 0 ? 'identical to the files' : `MISMATCH in ${report.verified.mismatches.join(', ')}`}`,
        );
        console.log('');
        console.log(
          table(
            ['heap', 'kind', 'size', 'placed', 'buffers'],
            report.heaps.map((h) => [String(h.heap), h.deviceLocal ? 'device-local' : 'host', formatBytes(h.size), formatBytes(h.bytes), String(h.buffers)]),
            [false, false, true, true, true],
          ),
        );
      }
      if (report.verified.mismatches.length > 0)
        throw new UnicornError(`weights on the GPU differ from the files: ${report.verified.mismatches.join(', ')}`, {
          hint: 'a driver or memory fault: run `unicorn load` again; report it if it persists',
        });
    });
}
