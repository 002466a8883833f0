/**
 * A quantization worker (node:worker_threads): reads a block of rows of one tensor straight from its
 * safetensors file, decodes it to f32, quantizes it (docs/formats.md) and hands back the bytes, plus
 * the sha256 of the source bytes it read. Messages: QuantJob in, QuantResult out.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { type DType, decodeFloats } from '../formats/dtypes.js';
import { readExactly } from '../formats/safetensors.js';
import { quantizeQ4, quantizeQ8 } from './quantize.js';

export interface QuantJob {
  readonly id: number;
  readonly path: string;
  readonly tensor: string;
  /** File offset and length of the rows' bytes. */
  readonly offset: number;
  readonly length: number;
  readonly dtype: DType;
  readonly rows: number;
  readonly cols: number;
  readonly format: 'q8' | 'q4';
  readonly group: number;
}

export interface QuantResult {
  readonly id: number;
  readonly main?: Uint8Array;
  readonly params?: Uint8Array;
  readonly sha256?: string;
  readonly error?: string;
  /** The first NaN or infinity of the block (index within the block's values): nothing is quantized. */
  readonly nonFinite?: { readonly index: number; readonly value: number };
}

/** Index of the first NaN or infinity, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

const fds = new Map<string, number>();

export function runJob(job: QuantJob): QuantResult {
  let fd = fds.get(job.path);
  if (fd === undefined) {
    fd = fs.openSync(job.path, 'r');
    fds.set(job.path, fd);
  }
  const raw = new Uint8Array(job.length);
  readExactly(fd, job.path, raw, 0, job.length, job.offset, job.tensor);
  const sha256 = createHash('sha256').update(raw).digest('hex');
  const w = decodeFloats(job.dtype, raw);
  const bad = firstNonFinite(w);
  if (bad >= 0) return { id: job.id, nonFinite: { index: bad, value: w[bad]! } };
  if (job.format === 'q8') {
    const q = quantizeQ8(w, job.rows, job.cols);
    return { id: job.id, main: new Uint8Array(q.q.buffer, q.q.byteOffset, q.q.byteLength), params: new Uint8Array(q.scales.buffer), sha256 };
  }
  const q = quantizeQ4(w, job.rows, job.cols, job.group);
  return { id: job.id, main: q.packed, params: new Uint8Array(q.params.buffer), sha256 };
}

if (parentPort !== null) {
  const port = parentPort;
  port.on('message', (job: QuantJob) => {
    let r: QuantResult;
    try {
      r = runJob(job);
    } catch (e) {
      r = { id: job.id, error: e instanceof Error ? e.message : String(e) };
    }
    const transfer = [r.main?.buffer, r.params?.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
    port.postMessage(r, transfer);
  });
}
