/**
 * Opens a model for generation: reads its directory, loads the weights onto the chosen device (or
 * prepares the CPU reference when asked), and ties backend, tokenizer and session together.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import type { Backend } from '../models/backend.js';
import { CpuBackend } from '../models/cpu-backend.js';
import { GpuBackend } from '../models/gpu-backend.js';
import { type ModelFiles, openModel } from '../models/model-dir.js';
import { type KvCacheType, checkKvCache } from '../models/memory.js';
import { type LoadProgress, loadWeights } from '../models/weights.js';
import { TextCodec } from '../text/tokenizer.js';
import { Commands } from '../vulkan/commands.js';
import { Device } from '../vulkan/device.js';
import { Allocator } from '../vulkan/memory.js';
import type { SamplingOptions } from './sampler.js';
import { checkFits } from './fit.js';
import { Session } from './session.js';

export type DeviceChoice = 'gpu' | 'cpu';

export interface RunnerOptions {
  readonly device?: DeviceChoice;
  /** Which GPU (index or part of its name); default: UNICORN_GPU, else the best. */
  readonly gpu?: string;
  /** Context length; default min(4096, the model's maximum). */
  readonly ctx?: number;
  readonly batch?: number;
  /** Whether text is needed (tokenizer.json required). */
  readonly text?: boolean;
  readonly onLoad?: (p: LoadProgress) => void;
  /**
   * Called once the tokenizer is read and before any weight is loaded, so that what can be refused
   * without the model (a prompt too long for the context) costs no loading time.
   */
  readonly beforeWeights?: (codec: TextCodec | null, ctx: number, model: ModelFiles) => void;
  /** GPU timestamps per dispatch (benchmarks). */
  readonly profile?: boolean;
  /** How the KV cache stores keys and values (models/memory.ts); default f16. */
  readonly kvCache?: KvCacheType;
}

export interface Runner {
  readonly model: ModelFiles;
  readonly backend: Backend;
  readonly codec: TextCodec | null;
  readonly session: Session;
  readonly device: Device | null;
  readonly loadSeconds: number;
  readonly loadedBytes: number;
  /** GPU memory this process holds (weights, KV cache, scratch), or null on the CPU path. */
  gpuBytes(): number | null;
  /** Sampling defaults from generation_config.json (what the model's authors recommend). */
  readonly defaults: Partial<SamplingOptions>;
  close(): void;
}

export const DEFAULT_CTX = 4096;

/** do_sample, temperature, top_k, top_p, min_p and repetition_penalty from generation_config.json. */
export function generationDefaults(dir: string): Partial<SamplingOptions> {
  const file = path.join(dir, 'generation_config.json');
  if (!fs.existsSync(file)) return {};
  let g: Record<string, unknown>;
  try {
    g = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    throw new ConfigError(`${file}: is not valid JSON`);
  }
  const num = (k: string) => (typeof g[k] === 'number' ? (g[k] as number) : undefined);
  const out: { -readonly [K in keyof SamplingOptions]?: SamplingOptions[K] } = {};
  if (g['do_sample'] === false) out.temperature = 0;
  else if (num('temperature') !== undefined) out.temperature = num('temperature')!;
  if (num('top_k') !== undefined) out.topK = num('top_k')!;
  if (num('top_p') !== undefined) out.topP = num('top_p')!;
  if (num('min_p') !== undefined) out.minP = num('min_p')!;
  if (num('repetition_penalty') !== undefined) out.repetitionPenalty = num('repetition_penalty')!;
  return out;
}

export function openRunner(target: string, opts: RunnerOptions = {}): Runner {
  const model = openModel(target);
  const spec = model.spec;
  const ctx = opts.ctx ?? Math.min(DEFAULT_CTX, spec.maxPositionEmbeddings);
  if (!Number.isSafeInteger(ctx) || ctx < 1 || ctx > spec.maxPositionEmbeddings) {
    model.checkpoint.close();
    throw new ConfigError(`--ctx ${ctx}: this model takes contexts of 1 to ${spec.maxPositionEmbeddings} tokens`);
  }
  const kvCache = opts.kvCache ?? 'f16';
  try {
    checkKvCache(spec, kvCache);
  } catch (e) {
    model.checkpoint.close();
    throw e;
  }
  let codec: TextCodec | null = null;
  let device: Device | null = null;
  try {
    codec = opts.text === false && !fs.existsSync(path.join(model.dir, 'tokenizer.json')) ? null : TextCodec.load(model.dir);
    opts.beforeWeights?.(codec, ctx, model);
    const t0 = performance.now();
    let backend: Backend;
    let close: () => void;
    let gpuBytes: () => number | null = () => null;
    if (opts.device === 'cpu') {
      backend = new CpuBackend(model, { ctx, kvCache, ...(opts.batch === undefined ? {} : { batch: opts.batch }) });
      close = () => {
        backend.dispose();
        model.checkpoint.close();
      };
    } else {
      device = Device.open(opts.gpu);
      checkFits(model, device.info, ctx, kvCache);
      const alloc = new Allocator(device);
      gpuBytes = () => [...alloc.usage.values()].reduce((a, u) => a + u.bytes, 0);
      const cmds = new Commands(device);
      const weights = loadWeights(model, alloc, cmds, opts.onLoad);
      backend = new GpuBackend(device, alloc, weights, spec, {
        ctx,
        kvCache,
        profile: opts.profile === true,
        ...(opts.batch === undefined ? {} : { batch: opts.batch }),
      });
      const d = device;
      close = () => {
        backend.dispose();
        weights.free();
        d.destroy();
        model.checkpoint.close();
      };
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    const loadedBytes = [...model.bound.tensors.values()].reduce((a, t) => a + t.byteLength, 0);
    return {
      model,
      backend,
      codec,
      session: new Session(backend, codec ?? undefined),
      device,
      loadSeconds,
      loadedBytes,
      gpuBytes,
      defaults: generationDefaults(model.dir),
      close,
    };
  } catch (e) {
    device?.destroy();
    model.checkpoint.close();
    throw e;
  }
}
