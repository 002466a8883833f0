/**
 * Where run, chat and serve get their model: a resident server that holds it (unicorn load --keep),
 * which answers without loading it again, or a load in this process with a progress spinner.
 */
import { type Runner, type RunnerOptions, openRunner } from '../engine/generate/runner.js';
import type { KvCacheType } from '../engine/models/memory.js';
import { ResidentClient } from '../engine/server/client.js';
import type { ServerInfo } from '../engine/server/protocol.js';
import { formatBytes } from './format.js';
import { spinner } from './spinner.js';

export interface LoadFlags {
  readonly device: 'gpu' | 'cpu';
  readonly gpu?: string;
  readonly ctx?: number;
  /** --kv-cache; undefined: f16. */
  readonly kvCache?: KvCacheType;
  readonly json?: boolean;
}

export type ModelSource =
  | { readonly kind: 'resident'; readonly client: ResidentClient; readonly info: ServerInfo; close(): void }
  | { readonly kind: 'local'; readonly runner: Runner; close(): void };

/**
 * Loads the model in this process, the spinner showing GB, GB/s and ETA. (openRunner refuses a cache
 * type the model's heads cannot take once its config is read, before the GPU is opened.)
 */
export function loadHere(modelDir: string, flags: LoadFlags, beforeWeights?: RunnerOptions['beforeWeights']): Runner {
  const s = spinner(`opening ${modelDir}`, { json: flags.json === true });
  const t0 = performance.now();
  const kvCache = flags.kvCache ?? 'f16';
  try {
    const runner = openRunner(modelDir, {
      device: flags.device,
      kvCache,
      ...(flags.gpu === undefined ? {} : { gpu: flags.gpu }),
      ...(flags.ctx === undefined ? {} : { ctx: flags.ctx }),
      ...(beforeWeights === undefined ? {} : { beforeWeights }),
      onLoad: (p) => {
        const secs = (performance.now() - t0) / 1000;
        const rate = p.done / Math.max(secs, 1e-3);
        s.text = `loading weights ${formatBytes(p.done)} / ${formatBytes(p.total)} · ${formatBytes(rate)}/s · ETA ${((p.total - p.done) / Math.max(rate, 1)).toFixed(0)} s`;
      },
    });
    const where = runner.device === null ? 'CPU (TypeScript reference)' : runner.device.info.name;
    s.succeed(
      `${modelDir}: ${formatBytes(runner.loadedBytes)} on ${where} in ${runner.loadSeconds.toFixed(2)} s · context ${runner.backend.ctx}${kvCache === 'f16' ? '' : ` · KV cache ${kvCache}`}`,
    );
    return runner;
  } catch (e) {
    s.fail(`could not load ${modelDir}`);
    throw e;
  }
}

/**
 * The resident server holding `modelDir` when there is one (on the GPU path; `say` reports it), else
 * the model loaded here. close() ends the connection or unloads. The resident model is used as it
 * was loaded: a --ctx or --kv-cache that differs from its own does not load another copy; the line
 * `say` gets names the context and the KV cache type it has, and what was asked that it does not have.
 */
export async function openModelSource(
  modelDir: string,
  flags: LoadFlags,
  o: { say?: (line: string) => void; beforeWeights?: RunnerOptions['beforeWeights'] } = {},
): Promise<ModelSource> {
  const client = flags.device === 'gpu' ? await ResidentClient.connect(modelDir) : null;
  if (client !== null) {
    try {
      const info = await client.info();
      const kv = info.kvCache ?? 'f16';
      // What was asked and the resident model does not have: said, not silently dropped.
      const differs = [
        ...(flags.ctx !== undefined && flags.ctx !== info.ctx ? [`--ctx ${flags.ctx}`] : []),
        ...(flags.kvCache !== undefined && flags.kvCache !== kv ? [`--kv-cache ${flags.kvCache}`] : []),
      ];
      (o.say ?? ((line) => process.stderr.write(`${line}\n`)))(
        `using the resident ${info.model} (pid ${info.pid}, ${info.device}, context ${info.ctx}, KV cache ${kv})` +
          (differs.length > 0 ? `; ${differs.join(' and ')} not applied: \`unicorn stop\` it and load again to change that` : ''),
      );
      return { kind: 'resident', client, info, close: () => client.close() };
    } catch (e) {
      client.close();
      throw e;
    }
  }
  const runner = loadHere(modelDir, flags, o.beforeWeights);
  return { kind: 'local', runner, close: () => runner.close() };
}
