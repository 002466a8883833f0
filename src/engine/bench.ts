/**
 * Prefill and decode speed of a whole model on the GPU, against the bandwidth roofline measured in
 * the same run (`unicorn bench`, `npm run bench:decode`).
 *
 * Decode at batch 1 reads every weight once per token (plus the KV cache), so its ceiling is the
 * copy rate / bytes read per token: the report gives tok/s, the GB/s that implies and its share of
 * the copy rate. Prompt token ids are drawn at random from a fixed seed (speed does not depend on
 * them); decode is greedy, then again with sampling as `unicorn run` samples by default. With
 * `profile`, GPU timestamps after every dispatch give one decode step's time per kernel, and one
 * prefill batch's (the last of the prompt).
 */
import { UnicornError } from './errors.js';
import { openRunner } from './generate/runner.js';
import { type KvCacheType, checkKvCache, kvCacheBytes } from './models/memory.js';
import { openModel } from './models/model-dir.js';
import { GREEDY } from './generate/sampler.js';
import { Session } from './generate/session.js';
import type { GpuBackend } from './models/gpu-backend.js';
import { describeSubgroups } from './kernels/subgroups.js';
import { deviceCopyRate } from './vulkan/bandwidth.js';
import { Device } from './vulkan/device.js';
import { Allocator } from './vulkan/memory.js';

export interface BenchOptions {
  readonly promptTokens: number;
  readonly genTokens: number;
  /** Context length (default: enough for the prompt and the tokens, at least 1024 where the model allows). */
  readonly ctx?: number;
  readonly gpu?: string;
  /** How the KV cache stores keys and values (default f16). */
  readonly kvCache?: KvCacheType;
  readonly profile?: boolean;
  /** Called as each stage starts (a spinner's text). */
  readonly onStage?: (what: string) => void;
}

export interface KernelTime {
  readonly kernel: string;
  readonly count: number;
  readonly totalUs: number;
  readonly share: number;
}

export interface BenchResult {
  readonly model: string;
  readonly architecture: string;
  readonly device: string;
  /** The subgroup size each kernel family runs at (kernels/subgroups.ts). */
  readonly subgroups: string;
  /** The prefill matrix x matrix kernel (kernels/matmul.ts). */
  readonly matmul: string;
  /** The prefill attention kernel (kernels/attention-coop.ts). */
  readonly attention: string;
  /** How the KV cache stored keys and values in this run (--kv-cache). */
  readonly kvCache: KvCacheType;
  /** The KV cache's bytes at the run's context (models/memory.ts kvCacheBytes). */
  readonly kvCacheBytes: number;
  /** The run's context length (the KV cache is made for it). */
  readonly ctx: number;
  /** Bytes a decode step reads: every projection, the output head, the norms (one embedding row). */
  readonly bytesPerToken: number;
  /** Copy by a compute shader between device-local buffers, GB/s (read + write). */
  readonly copyGBs: number;
  readonly rooflineTokensPerSecond: number;
  readonly prefill: { readonly tokens: number; readonly seconds: number; readonly tokensPerSecond: number; readonly timeToFirstTokenMs: number };
  readonly decode: {
    readonly tokens: number;
    readonly tokensPerSecond: number;
    readonly weightGBs: number;
    readonly ofRoofline: number;
    readonly sampledTokensPerSecond: number;
  };
  /** One greedy decode step, per kernel (with `profile`). */
  readonly step?: StepProfile;
  /** The prompt's last prefill batch, per kernel (with `profile`). */
  readonly prefillStep?: StepProfile & { readonly tokens: number };
}

export interface StepProfile {
  readonly dispatches: number;
  readonly gpuMs: number;
  readonly kernels: readonly KernelTime[];
}

/** Per-dispatch times summed per kernel, the largest first. */
function profileOf(steps: readonly { label: string; us: number }[]): StepProfile {
  const byKernel = new Map<string, { us: number; n: number }>();
  for (const st of steps) {
    const e = byKernel.get(st.label) ?? { us: 0, n: 0 };
    e.us += st.us;
    e.n++;
    byKernel.set(st.label, e);
  }
  const total = steps.reduce((a, st) => a + st.us, 0);
  return {
    dispatches: steps.length,
    gpuMs: total / 1000,
    kernels: [...byKernel].sort((a, b) => b[1].us - a[1].us).map(([kernel, e]) => ({ kernel, count: e.n, totalUs: e.us, share: e.us / total })),
  };
}

export const SAMPLED = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1, repeatLastN: 64, seed: 1 } as const;

export function benchModel(dir: string, o: BenchOptions): BenchResult {
  if (!(o.promptTokens >= 1) || !(o.genTokens >= 2)) throw new UnicornError('bench: the prompt needs 1 token or more and the generation 2 or more');
  const kvCache = o.kvCache ?? 'f16';
  // What the config refuses (sizes beyond the model's positions, a cache type its heads cannot
  // take) is refused before anything is measured or loaded.
  const need = o.promptTokens + o.genTokens + 1;
  const m = openModel(dir);
  m.checkpoint.close();
  const maxPositions = m.spec.maxPositionEmbeddings;
  if ((o.ctx ?? need) > maxPositions || (o.ctx !== undefined && o.ctx < need)) {
    throw new UnicornError(
      `bench: ${o.promptTokens} prompt + ${o.genTokens} generated tokens need a context of ${need}${o.ctx === undefined ? '' : ` (--ctx ${o.ctx})`}; this model takes up to ${maxPositions} positions`,
      {
        hint: 'use a shorter --prompt or --tokens',
      },
    );
  }
  checkKvCache(m.spec, kvCache);
  // The copy baseline first, on an empty GPU (with a model loaded, free memory and placement vary).
  o.onStage?.('measuring the copy rate');
  const probe = Device.open(o.gpu);
  let copyGBs: number;
  let device: string;
  let subgroups: string;
  try {
    device = probe.info.name;
    subgroups = describeSubgroups(probe.info);
    copyGBs = deviceCopyRate(probe, new Allocator(probe));
  } finally {
    probe.destroy();
  }
  o.onStage?.(`loading ${dir}`);
  const ctx = o.ctx ?? need;
  const runner = openRunner(dir, { text: false, kvCache, profile: o.profile === true, ...(o.gpu === undefined ? {} : { gpu: o.gpu }), ctx });
  try {
    const spec = runner.model.spec;
    const matmul = runner.device === null ? 'the CPU reference' : (runner.backend as GpuBackend).prefillKernel();
    const attention = runner.device === null ? 'the CPU reference' : (runner.backend as GpuBackend).prefillAttention();
    let bytesPerToken = 0;
    for (const [name, t] of runner.model.bound.tensors)
      bytesPerToken += name === 'embed_tokens.weight' ? (spec.tieWordEmbeddings ? t.byteLength : 0) : t.byteLength;
    let seed = 1;
    const rand = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed;
    };
    const prompt = Array.from({ length: o.promptTokens }, () => 3 + (rand() % (spec.vocabSize - 3)));
    o.onStage?.('warming up');
    new Session(runner.backend).generate(prompt.slice(0, Math.min(8, prompt.length)), { maxTokens: 2, sampling: GREEDY, eosIds: [] });
    o.onStage?.(`prefill ${o.promptTokens} tokens, decode ${o.genTokens}`);
    const t = new Session(runner.backend).generate(prompt, { maxTokens: o.genTokens, sampling: GREEDY, eosIds: [] }).timings;
    const gpu = o.profile === true && runner.device !== null ? (runner.backend as GpuBackend) : null;
    const steps = gpu?.lastProfile() ?? [];
    const prefillSteps = gpu?.lastPrefillProfile() ?? { tokens: 0, steps: [] };
    o.onStage?.('decode with sampling');
    const s = new Session(runner.backend).generate(prompt, { maxTokens: o.genTokens, sampling: SAMPLED, eosIds: [] }).timings;
    const decodeTps = t.decodeSteps / t.decodeSeconds;
    const roofline = (copyGBs * 1e9) / bytesPerToken;
    return {
      model: dir,
      architecture: spec.architecture,
      device,
      subgroups,
      matmul,
      attention,
      kvCache,
      kvCacheBytes: kvCacheBytes(spec, ctx, kvCache),
      ctx,
      bytesPerToken,
      copyGBs,
      rooflineTokensPerSecond: roofline,
      prefill: {
        tokens: t.promptTokens,
        seconds: t.prefillSeconds,
        tokensPerSecond: t.promptTokens / t.prefillSeconds,
        timeToFirstTokenMs: t.timeToFirstToken * 1000,
      },
      decode: {
        tokens: t.decodeSteps,
        tokensPerSecond: decodeTps,
        weightGBs: (decodeTps * bytesPerToken) / 1e9,
        ofRoofline: decodeTps / roofline,
        sampledTokensPerSecond: s.decodeSteps / s.decodeSeconds,
      },
      ...(steps.length === 0 ? {} : { step: profileOf(steps) }),
      ...(prefillSteps.steps.length === 0 ? {} : { prefillStep: { tokens: prefillSteps.tokens, ...profileOf(prefillSteps.steps) } }),
    };
  } finally {
    runner.close();
  }
}

/** The report as text: one line per measurement, then the step's kernels when profiled. */
export function renderBench(r: BenchResult): string {
  const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(2)} MB`);
  const n = (v: number, d = 0) => v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const rate = (v: number) => n(v, v >= 100 ? 0 : v >= 10 ? 1 : 2);
  const lines = [
    `model     ${r.model}: ${r.architecture}, ${gb(r.bytesPerToken)} read per decode token`,
    `device    ${r.device}: copy by compute shader ${rate(r.copyGBs)} GB/s -> roofline ${n(r.rooflineTokensPerSecond)} tok/s`,
    `subgroups ${r.subgroups}`,
    `matmul    ${r.matmul}`,
    `attention ${r.attention}`,
    `kv cache  ${r.kvCache}${r.kvCache === 'q8' ? ' (int8, blocks of 32 with an f32 scale)' : ''}: ${gb(r.kvCacheBytes)} at context ${n(r.ctx)}`,
    `prefill   ${r.prefill.tokens} tokens in ${n(r.prefill.seconds * 1000)} ms: ${n(r.prefill.tokensPerSecond)} tok/s (time to first token ${n(r.prefill.timeToFirstTokenMs)} ms)`,
    `decode    ${r.decode.tokens} tokens after the first: ${n(r.decode.tokensPerSecond, 1)} tok/s greedy = ${rate(r.decode.weightGBs)} GB/s of weights, ${n(100 * r.decode.ofRoofline)}% of the roofline`,
    `          ${n(r.decode.sampledTokensPerSecond, 1)} tok/s sampling (temperature ${SAMPLED.temperature}, top-k ${SAMPLED.topK}, top-p ${SAMPLED.topP}, min-p ${SAMPLED.minP})`,
  ];
  const table = (p: StepProfile) => {
    lines.push('kernel                     count   total µs   share   µs each');
    for (const k of p.kernels) {
      lines.push(
        `${k.kernel.padEnd(25)} ${String(k.count).padStart(6)} ${k.totalUs.toFixed(0).padStart(10)} ${(100 * k.share).toFixed(1).padStart(6)}% ${(k.totalUs / k.count).toFixed(1).padStart(9)}`,
      );
    }
  };
  if (r.prefillStep !== undefined) {
    lines.push(
      '',
      `the prompt's last prefill batch on the GPU: ${r.prefillStep.tokens} tokens, ${r.prefillStep.dispatches} dispatches, ${r.prefillStep.gpuMs.toFixed(2)} ms`,
    );
    table(r.prefillStep);
  }
  if (r.step !== undefined) {
    lines.push(
      '',
      `one decode step on the GPU: ${r.step.dispatches} dispatches, ${r.step.gpuMs.toFixed(2)} ms (host-measured ${(1000 / r.decode.tokensPerSecond).toFixed(2)} ms)`,
    );
    table(r.step);
  }
  return lines.join('\n');
}
