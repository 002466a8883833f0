/**
 * A model's weights in GPU memory, streamed from its checkpoint layer by layer. Projections stay in
 * the format they are stored in (bf16, f16, f32, or INT8 / INT4 as unicorn quantize wrote them,
 * docs/formats.md); norms and biases, a few KB each, become f32. Host memory stays bounded by the streamer's
 * staging size whatever the model size.
 */
import { bf16ToF32, decodeFloats, type DType, f16ToF32, f32ToBf16, f32ToF16 } from '../formats/dtypes.js';
import type { CheckpointTensor } from '../formats/checkpoint.js';
import { CheckpointError } from '../errors.js';
import type { GpuMatrix, WeightFormatName } from '../kernels/matvec.js';
import type { EmbeddingFormat } from '../kernels/ops.js';
import type { Commands } from '../vulkan/commands.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { TensorStreamer } from '../vulkan/stream.js';
import { upload } from '../vulkan/transfer.js';
import type { ModelFiles } from './model-dir.js';
import { type BoundTensor, expectedTensors } from './tensors.js';

const MATRIX_FORMAT: Partial<Record<DType, WeightFormatName>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

export interface GpuEmbedding {
  readonly format: EmbeddingFormat;
  readonly table: GpuBuffer;
  /** INT8 tables: f32 scale per row; otherwise a placeholder. */
  readonly rowScale: GpuBuffer;
  /** The spec's embedding scale rounded to the table's dtype, as transformers applies it. */
  readonly scale: number;
}

/**
 * transformers multiplies Gemma's embeddings by `embed_scale.to(weight.dtype)`: sqrt(hidden) rounded
 * to bf16 for a bf16 table (sqrt(5376) = 73.32 becomes 73.5). unicorn does the same, to match.
 */
export function embeddingScale(scale: number, dtype: DType): number {
  if (dtype === 'BF16') return bf16ToF32(f32ToBf16(scale));
  if (dtype === 'F16') return f16ToF32(f32ToF16(scale));
  return Math.fround(scale);
}

export interface GpuWeights {
  readonly embedding: GpuEmbedding;
  /** The output projection: lm_head, or the embedding table itself when tied. */
  readonly lmHead: GpuMatrix;
  readonly matrices: ReadonlyMap<string, GpuMatrix>;
  /** Norm weights and biases as f32. */
  readonly vectors: ReadonlyMap<string, GpuBuffer>;
  readonly bytes: number;
  free(): void;
}

export interface LoadProgress {
  readonly done: number;
  readonly total: number;
  readonly tensors: number;
}

/** Whether a canonical tensor is a projection matrix (2-D, not the embedding). */
function isMatrix(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name !== 'embed_tokens.weight';
}

/**
 * Loads every tensor of a bound checkpoint into GPU memory: embedding first, then layer by layer,
 * then the final norm and the output projection. `onProgress` is called after each tensor.
 */
export function loadWeights(model: ModelFiles, alloc: Allocator, cmds: Commands, onProgress?: (p: LoadProgress) => void): GpuWeights {
  const { spec, bound } = model;
  const shapes = expectedTensors(spec);
  const order = [...shapes.keys()];
  const bytesOf = (t: BoundTensor) => t.byteLength + (t.quant?.params.byteLength ?? 0);
  const total = order.reduce((a, n) => a + bytesOf(bound.tensors.get(n)!), 0);
  const matrices = new Map<string, GpuMatrix>();
  const vectors = new Map<string, GpuBuffer>();
  const owned: GpuBuffer[] = [];
  const streamer = new TensorStreamer(cmds.device, alloc, Math.min(64 << 20, Math.max(1 << 20, largest(bound.tensors))));
  let done = 0;
  let count = 0;
  let embedding: GpuEmbedding | undefined;
  try {
    for (const name of order) {
      const t = bound.tensors.get(name)!;
      if (name === 'embed_tokens.weight') {
        const format = t.quant?.kind === 'q8' ? 'q8' : (MATRIX_FORMAT[t.dtype] as EmbeddingFormat | undefined);
        if (format === undefined || t.quant?.kind === 'q4') throw new CheckpointError(`${name}: embeddings stored as ${t.quant?.kind ?? t.dtype} are not supported`);
        const table = alloc.alloc(t.byteLength, name);
        owned.push(table);
        streamer.upload(t.file, t.name, table);
        let rowScale: GpuBuffer;
        if (t.quant !== undefined) {
          rowScale = alloc.alloc(t.quant.params.byteLength, `${name} scales`);
          streamer.upload(t.quant.params.file, t.quant.params.name, rowScale);
        } else {
          rowScale = alloc.alloc(16, 'embedding scale placeholder');
        }
        owned.push(rowScale);
        // A quantized table was made from the bf16 one: transformers' scale is bf16-rounded.
        embedding = { format, table, rowScale, scale: embeddingScale(spec.embeddingScale, t.quant !== undefined ? 'BF16' : t.dtype) };
      } else if (isMatrix(name, shapes.get(name)!)) {
        matrices.set(name, uploadMatrix(t, name, shapes.get(name)!, alloc, streamer, owned));
      } else {
        vectors.set(name, uploadVector(t, name, alloc, cmds, owned));
      }
      done += bytesOf(t);
      count++;
      onProgress?.({ done, total, tensors: count });
    }
    streamer.finish();
  } catch (e) {
    streamer.dispose();
    for (const b of owned) alloc.free(b);
    throw e;
  }
  streamer.dispose();
  const emb = embedding!;
  const lmHead = matrices.get('lm_head.weight') ?? {
    format: emb.format as WeightFormatName, rows: spec.vocabSize, cols: spec.hiddenSize, group: 0, w: emb.table, params: emb.format === 'q8' ? emb.rowScale : null,
  };
  return {
    embedding: emb, lmHead, matrices, vectors, bytes: total,
    free: () => { for (const b of owned) alloc.free(b); },
  };
}

function largest(tensors: ReadonlyMap<string, BoundTensor>): number {
  let m = 0;
  for (const t of tensors.values()) m = Math.max(m, t.byteLength);
  return m;
}

function uploadMatrix(t: BoundTensor, name: string, shape: readonly number[], alloc: Allocator, streamer: TensorStreamer, owned: GpuBuffer[]): GpuMatrix {
  const format = t.quant?.kind ?? MATRIX_FORMAT[t.dtype];
  if (format === undefined) throw new CheckpointError(`${name}: ${t.dtype} matrices are not supported`);
  const w = alloc.alloc(t.byteLength, name);
  owned.push(w);
  streamer.upload(t.file, t.name, w);
  let params: GpuBuffer | null = null;
  if (t.quant !== undefined) {
    params = alloc.alloc(t.quant.params.byteLength, `${name} ${t.quant.kind} params`);
    owned.push(params);
    streamer.upload(t.quant.params.file, t.quant.params.name, params);
  }
  return { format, rows: shape[0]!, cols: shape[1]!, group: t.quant?.group ?? 0, w, params };
}

function uploadVector(t: CheckpointTensor, name: string, alloc: Allocator, cmds: Commands, owned: GpuBuffer[]): GpuBuffer {
  const values = decodeFloats(t.dtype, t.file.readAll(t.name));
  const buf = alloc.alloc(Math.max(16, values.byteLength), name);
  owned.push(buf);
  upload(alloc, cmds, buf, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return buf;
}
