/**
 * A model's weights in GPU memory, streamed from its checkpoint layer by layer. Projections stay in
 * the format they are stored in (bf16, f16, f32, or INT8 / INT4 as unicorn quantize wrote them,
 * docs/formats.md); norms and biases, a few KB each, become f32. Host memory stays bounded by the streamer's
 * staging size whatever the model size.
 */
import { bf16ToF32, decodeFloats, type DType, f16ToF32, f32ToBf16, f32ToF16 } from '../formats/dtypes.js';
import type { CheckpointTensor } from '../formats/checkpoint.js';
import { CheckpointError } from '../errors.js';
import { type GpuMatrix, allocMatrix, matrixBuffers } from '../kernels/matvec.js';
import { type EmbeddingFormat, type WeightFormat, isEmbeddingFormat, matrixRowBytes, paramsRowBytes } from '../kernels/weight-formats.js';
import type { SafetensorsFile } from '../formats/safetensors.js';
import type { Commands } from '../vulkan/commands.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { TensorStreamer } from '../vulkan/stream.js';
import { upload } from '../vulkan/transfer.js';
import type { ModelFiles } from './model-dir.js';
import { type BoundTensor, expectedTensors, tensorFormat } from './tensors.js';

export interface GpuEmbedding {
  readonly format: EmbeddingFormat;
  /** The table [vocab, hidden] as a matrix (INT8: its f32 scale per row as params), in parts past the allocation limit. */
  readonly table: GpuMatrix;
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
        const format = tensorFormat(t);
        if (format === undefined || !isEmbeddingFormat(format)) throw new CheckpointError(`${name}: embeddings stored as ${t.quant?.kind ?? t.dtype} are not supported`);
        const table = loadMatrix(t, name, format, shapes.get(name)!, alloc, streamer, owned);
        // A quantized table was made from the bf16 one: transformers' scale is bf16-rounded.
        embedding = { format, table, scale: embeddingScale(spec.embeddingScale, t.quant !== undefined ? 'BF16' : t.dtype) };
      } else if (isMatrix(name, shapes.get(name)!)) {
        const format = tensorFormat(t);
        if (format === undefined) throw new CheckpointError(`${name}: ${t.dtype} matrices are not supported`);
        matrices.set(name, loadMatrix(t, name, format, shapes.get(name)!, alloc, streamer, owned));
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
  // Tied: the output projection is the embedding table itself, parts and all.
  const lmHead = matrices.get('lm_head.weight') ?? emb.table;
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

/**
 * Allocates a matrix (in parts past the device's allocation limit) and streams its rows, and its
 * INT8 / INT4 params, part by part from the checkpoint.
 */
function loadMatrix(t: BoundTensor, name: string, format: WeightFormat, shape: readonly number[], alloc: Allocator, streamer: TensorStreamer, owned: GpuBuffer[]): GpuMatrix {
  const [rows, cols] = [shape[0]!, shape[1]!];
  const group = t.quant?.group ?? 0;
  const m = allocMatrix(alloc, format, rows, cols, group, name);
  owned.push(...matrixBuffers(m));
  for (const s of matrixSlices(m, t)) streamer.upload(s.file, s.tensor, s.buffer, 0, s.start, s.length);
  return m;
}

/** Where each buffer of a loaded matrix comes from: a byte range of a tensor in the checkpoint. */
export interface MatrixSlice {
  readonly buffer: GpuBuffer;
  readonly file: SafetensorsFile;
  readonly tensor: string;
  readonly start: number;
  readonly length: number;
}

/** The checkpoint byte range behind every buffer of matrix m, loaded from the bound tensor t. */
export function matrixSlices(m: GpuMatrix, t: BoundTensor): MatrixSlice[] {
  const rowBytes = matrixRowBytes(m.format, m.cols);
  const pRowBytes = paramsRowBytes(m.format, m.cols, m.group);
  return m.parts.flatMap((p) => [
    { buffer: p.w, file: t.file, tensor: t.name, start: p.start * rowBytes, length: p.rows * rowBytes },
    ...(p.params === null || t.quant === undefined ? [] : [{ buffer: p.params, file: t.quant.params.file, tensor: t.quant.params.name, start: p.start * pRowBytes, length: p.rows * pRowBytes }]),
  ]);
}

function uploadVector(t: CheckpointTensor, name: string, alloc: Allocator, cmds: Commands, owned: GpuBuffer[]): GpuBuffer {
  const values = decodeFloats(t.dtype, t.file.readAll(t.name));
  const buf = alloc.alloc(Math.max(16, values.byteLength), name);
  owned.push(buf);
  upload(alloc, cmds, buf, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return buf;
}
