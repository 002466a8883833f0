/**
 * A strict safetensors reader.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section.
 * Everything sized from the file is validated before anything is allocated from it; tensors are
 * read with positional reads straight into a caller's buffer, never the whole file into memory.
 */
import * as fs from 'node:fs';
import { SafetensorsError } from '../errors.js';
import { type DType, DTYPE_SIZES, isDType } from './dtypes.js';
import { MAX_IO_BYTES, readFully } from './io.js';

/** Largest header we accept (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Offset of the first byte from the start of the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in data-section order. */
  readonly tensors: readonly TensorInfo[];
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Lists the top-level keys of a JSON object text in order, so duplicates can be detected
 * (JSON.parse silently keeps the last one). Linear, no recursion: depth is a counter.
 */
function topLevelKeys(text: string): string[] | undefined {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      if (i >= n) return undefined;
      i++;
      if (depth === 1) {
        let j = i;
        while (j < n && (text.charCodeAt(j) === 0x20 || text.charCodeAt(j) === 0x0a || text.charCodeAt(j) === 0x0d || text.charCodeAt(j) === 0x09)) j++;
        if (text.charCodeAt(j) === 0x3a /* : */) keys.push(JSON.parse(text.slice(start, i)) as string);
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    i++;
  }
  return keys;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a header given the file's size and the bytes after the 8-byte length.
 * Pure: used by the file reader and by the fuzz tests.
 */
export function parseHeader(file: string, fileSize: number, headerBytes: Uint8Array): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  const dataOffset = 8 + headerLength;
  let text: string;
  try {
    text = fatalUtf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new SafetensorsError(file, 'header does not start with a JSON object');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header is not a JSON object');
  }
  const obj = json as Record<string, unknown>;
  const names = Object.keys(obj);
  const listed = topLevelKeys(text);
  if (listed === undefined) throw new SafetensorsError(file, 'header is not valid JSON');
  if (listed.length !== names.length) {
    const seen = new Set<string>();
    const dup = listed.find((k) => (seen.has(k) ? true : (seen.add(k), false)));
    throw new SafetensorsError(file, 'appears twice in the header', dup);
  }

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const dataSize = fileSize - dataOffset;
  for (const name of names) {
    const entry = obj[name];
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new SafetensorsError(file, '__metadata__ is not an object of strings');
      }
      const meta: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ value for '${k}' is not a string`);
        meta[k] = v;
      }
      metadata = meta;
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new SafetensorsError(file, 'entry is not an object', name);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDType(dtype)) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)?.slice(0, 40)}`, name);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new SafetensorsError(file, 'shape is not a list of non-negative integers', name);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isNonNegInt(offsets[0]) || !isNonNegInt(offsets[1])) {
      throw new SafetensorsError(file, 'data_offsets is not a pair of non-negative integers', name);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new SafetensorsError(file, `data_offsets [${begin}, ${end}] end before begin`, name);
    // Exact product in BigInt: a lying shape must not overflow into a matching number.
    let elements = 1n;
    for (const d of shape as number[]) elements *= BigInt(d);
    const expected = elements * BigInt(DTYPE_SIZES[dtype]);
    if (expected !== BigInt(end - begin)) {
      throw new SafetensorsError(
        file,
        `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
        name,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] reach past the end of the file (data section is ${Math.max(dataSize, 0)} bytes)`,
        name,
        {
          hint: 'the file is probably truncated: download or copy it again',
        },
      );
    }
    tensors.push({ name, dtype, shape: shape as number[], fileOffset: dataOffset + begin, byteLength: end - begin });
  }
  // The data section must be covered exactly: sorted spans, no gap, no overlap, nothing after.
  tensors.sort((a, b) => a.fileOffset - b.fileOffset || a.byteLength - b.byteLength);
  let cursor = dataOffset;
  for (const t of tensors) {
    if (t.fileOffset < cursor) throw new SafetensorsError(file, "overlaps the previous tensor's data", t.name);
    if (t.fileOffset > cursor) throw new SafetensorsError(file, `leaves a gap of ${t.fileOffset - cursor} bytes before its data`, t.name);
    cursor = t.fileOffset + t.byteLength;
  }
  if (cursor !== fileSize) {
    throw new SafetensorsError(file, `${fileSize - cursor} bytes after the last tensor are not described by the header`);
  }
  return { headerLength, dataOffset, metadata, tensors };
}

/**
 * Checks the 8-byte length prefix against the file size, before anything is allocated from it.
 * Returns the header length.
 */
export function checkPrefix(file: string, fileSize: number, prefix: Uint8Array): number {
  if (fileSize < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes, too short for a safetensors header`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(fileSize - 8))
    throw new SafetensorsError(file, `header length ${n} is larger than the file (${fileSize} bytes)`, undefined, {
      hint: 'the file is truncated or not a safetensors file',
    });
  if (n < 2n) throw new SafetensorsError(file, `header length ${n} is too short for a JSON object`);
  return Number(n);
}

/** Validates a whole safetensors file held in memory (tests, fuzzing, small files). */
export function parseBuffer(file: string, bytes: Uint8Array): SafetensorsHeader {
  const n = checkPrefix(file, bytes.byteLength, bytes);
  return parseHeader(file, bytes.byteLength, bytes.subarray(8, 8 + n));
}

/**
 * Reads exactly `length` bytes at `position` into `dst` (at `dstOffset`), or throws. Any length: the
 * read goes in pieces of at most `maxPiece` bytes (io.ts).
 */
export function readExactly(
  fd: number,
  file: string,
  dst: Uint8Array,
  dstOffset: number,
  length: number,
  position: number,
  tensor?: string,
  maxPiece = MAX_IO_BYTES,
): void {
  const done = readFully(fd, dst, dstOffset, length, position, maxPiece);
  if (done < length)
    throw new SafetensorsError(file, `file ended ${length - done} bytes early`, tensor, { hint: 'the file changed or was truncated while being read' });
}

/** An open safetensors file: validated header, positional reads. */
export class SafetensorsFile implements SafetensorsHeader {
  readonly path: string;
  readonly size: number;
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly TensorInfo[];
  private readonly byName: Map<string, TensorInfo>;
  private fd: number | undefined;

  private constructor(path: string, fd: number, size: number, header: SafetensorsHeader) {
    this.path = path;
    this.fd = fd;
    this.size = size;
    this.headerLength = header.headerLength;
    this.dataOffset = header.dataOffset;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens and validates a file. Allocates at most the header, which is bounded by the file size. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new SafetensorsError(path, code === 'ENOENT' ? 'no such file' : `cannot open (${code ?? String(e)})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const prefix = new Uint8Array(8);
      if (size >= 8) readExactly(fd, path, prefix, 0, 8, 0);
      const headerBytes = new Uint8Array(checkPrefix(path, size, prefix));
      readExactly(fd, path, headerBytes, 0, headerBytes.byteLength, 8);
      return new SafetensorsFile(path, fd, size, parseHeader(path, size, headerBytes));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  tensor(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) throw new SafetensorsError(this.path, 'not in this file', name);
    return t;
  }

  private handle(): number {
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'file is closed');
    return this.fd;
  }

  /**
   * Reads a tensor, or the byte range [start, start + length) of it, into `dst` at `dstOffset`.
   * Returns the number of bytes read.
   */
  read(name: string, dst: Uint8Array, dstOffset = 0, start = 0, length?: number): number {
    const t = this.tensor(name);
    const len = length ?? t.byteLength - start;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len < 0 || start + len > t.byteLength) {
      throw new SafetensorsError(this.path, `byte range [${start}, ${start + len}) is outside the tensor's ${t.byteLength} bytes`, name);
    }
    if (dstOffset < 0 || dstOffset + len > dst.byteLength) {
      throw new RangeError(`destination of ${dst.byteLength} bytes cannot hold ${len} bytes at offset ${dstOffset}`);
    }
    readExactly(this.handle(), this.path, dst, dstOffset, len, t.fileOffset + start, name);
    return len;
  }

  /** Reads a whole tensor into a new buffer (for small tensors and tests). */
  readAll(name: string): Uint8Array {
    const t = this.tensor(name);
    const out = new Uint8Array(t.byteLength);
    this.read(name, out);
    return out;
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
