/**
 * Streaming safetensors writer. The header is fixed up front from the tensors' dtypes and shapes,
 * then the data is appended in order, in chunks of any size. The file appears under its final name
 * only after commit(): temp file, fsync, rename. abort() (or process exit) removes the temp file.
 */
import * as fs from 'node:fs';
import { WriteError } from '../errors.js';
import { type DType, DTYPE_SIZES } from './dtypes.js';
import { writeFully } from './io.js';
import { commitTemp, discardTemp, tempPathFor, writeFailure } from './atomic.js';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export function tensorByteLength(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype];
}

/** Builds the header bytes (length prefix included), padded with spaces to a multiple of 8. */
export function encodeHeader(tensors: readonly TensorSpec[], metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new WriteError(`tensor name '${t.name}' is reserved or used twice`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new WriteError(`tensor '${t.name}' has an invalid shape [${t.shape.join(', ')}]`);
    const size = tensorByteLength(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.byteLength) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

export class SafetensorsWriter {
  readonly path: string;
  private readonly tmp: string;
  private fd: number | undefined;
  private readonly sizes: number[];
  private readonly tensors: readonly TensorSpec[];
  private index = 0;
  private writtenInTensor = 0;
  private position: number;

  constructor(path: string, tensors: readonly TensorSpec[], metadata: Readonly<Record<string, string>> = {}) {
    this.path = path;
    this.tensors = tensors;
    this.sizes = tensors.map(tensorByteLength);
    const header = encodeHeader(tensors, metadata);
    this.tmp = tempPathFor(path);
    try {
      this.fd = fs.openSync(this.tmp, 'wx', 0o644);
      writeFully(this.fd, header, 0, header.byteLength, 0);
    } catch (e) {
      this.abort();
      throw writeFailure(path, e);
    }
    this.position = header.byteLength;
  }

  /** Moves past tensors whose bytes are all written (stopping at `stopAt`, which may be empty). */
  private advance(stopAt?: string): void {
    while (this.index < this.sizes.length && this.writtenInTensor === this.sizes[this.index] && this.tensors[this.index]!.name !== stopAt) {
      this.index++;
      this.writtenInTensor = 0;
    }
  }

  /** The tensor the next bytes belong to, or undefined when all data has been written. */
  get current(): TensorSpec | undefined {
    this.advance();
    return this.tensors[this.index];
  }

  /**
   * Appends bytes of the current tensor; a chunk may not run past the tensor's end. A refused chunk
   * leaves the writer as it was: the caller decides whether to go on or abort().
   */
  write(chunk: Uint8Array): void {
    if (this.fd === undefined) throw new WriteError(`${this.path}: writer is closed`);
    if (chunk.byteLength === 0) return;
    this.advance();
    const t = this.tensors[this.index];
    if (t === undefined) throw new WriteError(`${this.path}: all ${this.tensors.length} tensors are already written`);
    const left = this.sizes[this.index]! - this.writtenInTensor;
    if (chunk.byteLength > left) throw new WriteError(`${this.path}: tensor '${t.name}' takes ${left} more bytes, got ${chunk.byteLength}`);
    try {
      writeFully(this.fd, chunk, 0, chunk.byteLength, this.position);
    } catch (e) {
      this.abort();
      throw writeFailure(this.path, e);
    }
    this.position += chunk.byteLength;
    this.writtenInTensor += chunk.byteLength;
  }

  /** Writes one whole tensor, which must be the current one. */
  writeTensor(name: string, data: Uint8Array): void {
    this.advance(name);
    const t = this.tensors[this.index];
    if (t?.name !== name || this.writtenInTensor !== 0) throw new WriteError(`${this.path}: expected tensor '${t?.name ?? '(none)'}' next, got '${name}'`);
    if (data.byteLength !== this.sizes[this.index])
      throw new WriteError(`${this.path}: tensor '${name}' needs ${this.sizes[this.index]} bytes, got ${data.byteLength}`);
    this.write(data);
    if (data.byteLength === 0) {
      this.index++;
      this.writtenInTensor = 0;
    }
  }

  /** Flushes, fsyncs and renames onto the final name. */
  commit(): void {
    if (this.fd === undefined) throw new WriteError(`${this.path}: writer is closed`);
    this.advance();
    if (this.index < this.tensors.length) {
      const t = this.tensors[this.index]!;
      this.abort();
      throw new WriteError(`${this.path}: tensor '${t.name}' was not fully written; nothing was saved`);
    }
    try {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
      commitTemp(this.tmp, this.path);
    } catch (e) {
      this.abort();
      throw writeFailure(this.path, e);
    }
  }

  /** Drops everything written so far. Safe to call more than once. */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = undefined;
    }
    discardTemp(this.tmp);
  }
}

/** Writes whole in-memory tensors to a file, atomically. */
export function writeSafetensors(
  path: string,
  tensors: readonly (TensorSpec & { readonly data: Uint8Array })[],
  metadata: Readonly<Record<string, string>> = {},
): void {
  const w = new SafetensorsWriter(path, tensors, metadata);
  try {
    for (const t of tensors) w.writeTensor(t.name, t.data);
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}
