/**
 * `unicorn inspect --plan`: what a model's passes become on this GPU, from the engine itself (the
 * model is loaded and each pass recorded, never run): the fused steps of one layer and the dispatches
 * they lower to, for a decode step and for a prefill batch, with the totals of the whole pass.
 */
import { openRunner } from './generate/runner.js';
import type { KvCacheType } from './models/memory.js';
import type { FusedStep } from './models/fuse.js';
import { GpuBackend } from './models/gpu-backend.js';

export interface PassPlan {
  readonly tokens: number;
  readonly dispatches: number;
  readonly barriers: number;
  /** Layer 0's fused steps, and its dispatches and barriers as Commands' trace lines. */
  readonly layerSteps: readonly FusedStep[];
  readonly layerLines: readonly string[];
}

export interface ModelPlan {
  readonly model: string;
  readonly device: string;
  readonly fusion: boolean;
  /** The KV cache type the plan was recorded with. */
  readonly kvCache: KvCacheType;
  readonly decode: PassPlan;
  readonly prefill: PassPlan;
}

/** Layer 0's part of a pass's trace: its first line naming a layer-0 tensor to its last, and the barrier after. */
function layerZero(lines: readonly string[]): string[] {
  const first = lines.findIndex((l) => l.includes('layers.0.'));
  if (first < 0) return [];
  let last = lines.length - 1;
  while (!lines[last]!.includes('layers.0.')) last--;
  return lines.slice(first, last + (lines[last + 1]?.startsWith('barrier') === true ? 2 : 1));
}

/** The layer a fused step belongs to (undefined: the embedding or the head). */
function layerOf(s: FusedStep): number | undefined {
  if ('layer' in s) return s.layer;
  const name = s.op === 'gateUp' ? s.gate : s.op === 'headNorms' ? s.norms[0]?.weight : 'weight' in s ? s.weight : undefined;
  const m = name === undefined ? null : /^layers\.(\d+)\./.exec(name);
  return m === null ? undefined : Number(m[1]);
}

function passPlan(b: GpuBackend, tokens: number): PassPlan {
  const lines = b.plan(tokens, tokens === 1 ? { kind: 'argmax' } : { kind: 'logits' });
  return {
    tokens,
    dispatches: lines.filter((l) => !l.startsWith('barrier') && !l.startsWith('copy') && !l.startsWith('fill')).length,
    barriers: lines.filter((l) => l.startsWith('barrier')).length,
    layerSteps: b.fused(tokens).filter((s) => layerOf(s) === 0),
    layerLines: layerZero(lines),
  };
}

export function modelPlan(target: string, opts: { gpu?: string; ctx?: number; kvCache?: KvCacheType } = {}): ModelPlan {
  const kvCache = opts.kvCache ?? 'f16';
  const runner = openRunner(target, {
    text: false,
    kvCache,
    ...(opts.gpu === undefined ? {} : { gpu: opts.gpu }),
    ...(opts.ctx === undefined ? {} : { ctx: opts.ctx }),
  });
  try {
    const b = runner.backend;
    if (!(b instanceof GpuBackend)) throw new Error('modelPlan: not a GPU backend');
    return { model: runner.model.dir, device: b.name, fusion: b.fusion, kvCache, decode: passPlan(b, 1), prefill: passPlan(b, b.batch) };
  } finally {
    runner.close();
  }
}

/** One fused step in a few words: what it computes and where its int8 activations go. */
export function describeStep(s: FusedStep): string {
  const w = (name: string) => name.replace(/^layers\.\d+\./, '');
  const x8 = (v: unknown) =>
    v === undefined ? '' : v === 'quantize' ? ', int8 x by quantize_x' : `, int8 x from the producer (${(v as { slot: string }).slot})`;
  switch (s.op) {
    case 'embed':
      return 'embed';
    case 'norm':
      return `norm ${s.src} -> ${s.dst} (${w(s.weight)})${s.int8 === true ? ', writes int8 x' : ''}`;
    case 'addNorm':
      return `${s.dst} += norm(${s.src}) (${w(s.weight)})${s.next === undefined ? '' : ` then norm ${s.dst} -> ${s.next.out} (${w(s.next.weight)}) [add-norm]`}${s.int8 === true ? ', writes int8 x' : ''}`;
    case 'headNorms':
      return `head norms of ${s.norms.map((n) => n.buf).join(' and ')}`;
    case 'ropeStore':
      return `rope + cache store${s.norms === undefined ? '' : ', q/k head norms first [head-norms-rope]'}`;
    case 'linear':
      return `${s.dst} = ${s.src} · ${w(s.weight)}${s.bias === undefined ? '' : ' + bias'}${x8(s.x8)}`;
    case 'linearAdd':
      return `${s.dst} += ${s.src} · ${w(s.weight)}${x8(s.x8)}`;
    case 'gateUp':
      return `g = ${s.act}(${s.src} · ${w(s.gate)}) * (${s.src} · ${w(s.up)})${x8(s.x8)}${s.int8 === true ? ', writes int8 g' : ''}`;
    case 'attention':
      return `attention -> ${s.dst}${s.int8 === true ? ', combine writes int8 x' : ''}`;
    case 'logits':
      return `logits of ${s.src}${x8(s.x8)}`;
    case 'observe':
      return `observe ${s.stage}`;
  }
}
