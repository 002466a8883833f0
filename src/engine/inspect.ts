/** What `unicorn inspect` reports, gathered without printing: headers only, no tensor data read. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from './formats/checkpoint.js';
import type { DType } from './formats/dtypes.js';
import { type MemoryPlanRow, kvCacheRefusal, memoryPlan, parameterCount } from './models/memory.js';
import { readModelSpec } from './models/model-dir.js';
import type { ModelSpec } from './models/spec.js';
import { type SkippedTensor, bindCheckpoint, classifyName } from './models/tensors.js';

export interface TensorRow {
  readonly name: string;
  /** The canonical name the engine uses, or null for skipped and unrecognised tensors. */
  readonly canonical: string | null;
  readonly status: 'used' | 'skipped (vision)' | 'skipped (derived)' | 'skipped (tied)' | 'unknown';
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly file: string;
  /** How the engine reads it: the dtype, or for unicorn-quantized matrices q8 / q4 (group), and their scales / params. */
  readonly format: string;
}

export interface InspectReport {
  readonly path: string;
  readonly files: readonly { readonly file: string; readonly bytes: number; readonly tensors: number }[];
  readonly totalBytes: number;
  readonly dtypes: readonly { readonly dtype: DType; readonly tensors: number; readonly bytes: number }[];
  /** Absent when no config.json sits beside the weights (a bare .safetensors file). */
  readonly model?: {
    readonly spec: ModelSpec;
    readonly parameters: number;
    readonly skipped: readonly SkippedTensor[];
    readonly memory: {
      readonly ctx: number;
      readonly group: number;
      /** Per scheme, with an f16 KV cache (the default). */
      readonly rows: readonly MemoryPlanRow[];
      /** Per scheme, with a q8 KV cache (--kv-cache q8); null where the model's heads do not take it (q8Refusal says why). */
      readonly rowsQ8: readonly MemoryPlanRow[] | null;
      readonly q8Refusal?: string;
    };
  };
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly TensorRow[];
}

export interface InspectOptions {
  readonly ctx: number;
  readonly group: number;
}

export function inspectTarget(target: string, opts: InspectOptions): InspectReport {
  const ckpt = Checkpoint.open(target);
  try {
    const dir = ckpt.dir;
    const hasConfig = fs.existsSync(path.join(dir, 'config.json'));
    let model: InspectReport['model'];
    const skippedByName = new Map<string, SkippedTensor>();
    const formatByName = new Map<string, string>();
    if (hasConfig) {
      const spec = readModelSpec(dir);
      const bound = bindCheckpoint(spec, ckpt);
      for (const s of bound.skipped) skippedByName.set(s.name, s);
      for (const t of bound.tensors.values()) {
        if (t.quant === undefined) continue;
        formatByName.set(t.name, t.quant.kind === 'q8' ? 'q8' : `q4/${t.quant.group}`);
        formatByName.set(t.quant.params.name, t.quant.kind === 'q8' ? 'q8 scales' : `q4/${t.quant.group} params`);
      }
      const q8Refusal = kvCacheRefusal(spec, 'q8');
      model = {
        spec,
        parameters: parameterCount(spec),
        skipped: bound.skipped,
        memory: {
          ctx: opts.ctx,
          group: opts.group,
          rows: memoryPlan(spec, opts.ctx, opts.group),
          rowsQ8: q8Refusal === undefined ? memoryPlan(spec, opts.ctx, opts.group, 'q8') : null,
          ...(q8Refusal === undefined ? {} : { q8Refusal }),
        },
      };
    }
    const tensors: TensorRow[] = [];
    const dtypes = new Map<DType, { tensors: number; bytes: number }>();
    for (const [name, t] of ckpt.tensors) {
      const skipped = skippedByName.get(name);
      const c = classifyName(name);
      const status: TensorRow['status'] =
        skipped !== undefined ? `skipped (${skipped.reason})` : c?.kind === 'model' ? 'used' : c === undefined ? 'unknown' : `skipped (${c.reason})`;
      tensors.push({
        name,
        canonical: status === 'used' && c?.kind === 'model' ? c.canonical : null,
        status,
        dtype: t.dtype,
        shape: t.shape,
        bytes: t.byteLength,
        file: path.basename(t.file.path),
        format: formatByName.get(name) ?? t.dtype,
      });
      const d = dtypes.get(t.dtype) ?? { tensors: 0, bytes: 0 };
      d.tensors++;
      d.bytes += t.byteLength;
      dtypes.set(t.dtype, d);
    }
    tensors.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    const metadata: Record<string, string> = {};
    for (const f of ckpt.files) Object.assign(metadata, f.metadata);
    return {
      path: target,
      files: ckpt.files.map((f) => ({ file: path.basename(f.path), bytes: f.size, tensors: f.tensors.length })),
      totalBytes: ckpt.totalBytes,
      dtypes: [...dtypes].map(([dtype, d]) => ({ dtype, ...d })).sort((a, b) => b.bytes - a.bytes),
      ...(model === undefined ? {} : { model }),
      metadata,
      tensors,
    };
  } finally {
    ckpt.close();
  }
}
