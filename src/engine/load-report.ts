/**
 * `unicorn load`: a model into GPU memory, measured: placement per heap, seconds and GB/s against
 * the plain read rate of the same files (measured first, in the same run), peak host memory, and a
 * read-back check that sampled tensors on the GPU hold exactly what the files hold.
 */
import * as fs from 'node:fs';
import { decodeFloats } from './formats/dtypes.js';
import { checkFits } from './generate/fit.js';
import { DEFAULT_CTX } from './generate/runner.js';
import { type KvCacheType, checkKvCache } from './models/memory.js';
import { type ModelFiles, openModel } from './models/model-dir.js';
import { type GpuWeights, type LoadProgress, loadWeights, matrixSlices } from './models/weights.js';
import type { SafetensorsFile } from './formats/safetensors.js';
import { Commands } from './vulkan/commands.js';
import { Device } from './vulkan/device.js';
import { Allocator, type GpuBuffer } from './vulkan/memory.js';
import { download } from './vulkan/transfer.js';

export interface HeapPlacement {
  readonly heap: number;
  readonly deviceLocal: boolean;
  readonly size: number;
  readonly bytes: number;
  readonly buffers: number;
}

export interface LoadReport {
  readonly model: string;
  readonly device: string;
  readonly bytes: number;
  readonly tensors: number;
  readonly seconds: number;
  readonly gbPerSecond: number;
  readonly fileReadGbPerSecond: number;
  readonly heaps: readonly HeapPlacement[];
  readonly peakRssBytes: number;
  /** A CPU driver (lavapipe): its "GPU memory" is this process's RAM, counted in the peak. */
  readonly cpuDevice: boolean;
  readonly verified: { readonly tensors: number; readonly bytes: number; readonly mismatches: readonly string[] };
}

/** Sequential read of every shard in 16 MiB chunks: the rate the disk (or page cache) gives. */
export function fileReadRate(files: readonly string[], limitBytes = Infinity): number {
  const buf = Buffer.alloc(16 << 20);
  const t0 = performance.now();
  let total = 0;
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    try {
      let n: number;
      while (total < limitBytes && (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) total += n;
    } finally {
      fs.closeSync(fd);
    }
  }
  return total / 1e9 / Math.max(1e-6, (performance.now() - t0) / 1000);
}

/** Which tensors to read back: the first, the last and about `n` spread between. */
function sample<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  const out = new Set<number>([0, items.length - 1]);
  for (let i = 1; out.size < n; i++) out.add(Math.floor((i * items.length) / n) % items.length);
  return [...out].sort((a, b) => a - b).map((i) => items[i]!);
}

/** Whether `length` bytes of a tensor from `start` equal the buffer's first `length` bytes, compared a chunk at a time. */
function sameBytes(alloc: Allocator, cmds: Commands, buf: GpuBuffer, file: SafetensorsFile, tensor: string, start: number, length: number): boolean {
  const chunk = Math.min(length, 16 << 20);
  const want = new Uint8Array(chunk);
  const got = new Uint8Array(chunk);
  for (let done = 0; done < length; done += chunk) {
    const n = Math.min(chunk, length - done);
    file.read(tensor, want, 0, start + done, n);
    download(alloc, cmds, buf, got.subarray(0, n), done);
    if (Buffer.compare(want.subarray(0, n), got.subarray(0, n)) !== 0) return false;
  }
  return true;
}

function verify(model: ModelFiles, w: GpuWeights, alloc: Allocator, cmds: Commands, n: number): LoadReport['verified'] {
  const names = sample([...model.bound.tensors.keys()], n);
  const mismatches: string[] = [];
  let bytes = 0;
  for (const name of names) {
    const t = model.bound.tensors.get(name)!;
    const m = name === 'embed_tokens.weight' ? w.embedding.table : w.matrices.get(name);
    let same = true;
    if (m !== undefined) {
      // Every buffer of the matrix (each part's weights and params) against its range of the file.
      for (const s of matrixSlices(m, t)) {
        same &&= sameBytes(alloc, cmds, s.buffer, s.file, s.tensor, s.start, s.length);
        bytes += s.length;
      }
    } else {
      const want = decodeFloats(t.dtype, t.file.readAll(t.name)); // norms and biases are held as f32
      const got = download(alloc, cmds, w.vectors.get(name)!, new Uint8Array(want.byteLength));
      same = Buffer.compare(new Uint8Array(want.buffer, want.byteOffset, want.byteLength), got) === 0;
      bytes += want.byteLength;
    }
    if (!same) mismatches.push(name);
  }
  return { tensors: names.length, bytes, mismatches };
}

export function loadModel(
  target: string,
  opts: { gpu?: string; ctx?: number; kvCache?: KvCacheType; verifyTensors?: number; onProgress?: (p: LoadProgress) => void } = {},
): LoadReport {
  const model = openModel(target);
  const kvCache = opts.kvCache ?? 'f16';
  try {
    checkKvCache(model.spec, kvCache);
  } catch (e) {
    model.checkpoint.close();
    throw e;
  }
  const device = Device.open(opts.gpu);
  try {
    checkFits(model, device.info, opts.ctx ?? Math.min(DEFAULT_CTX, model.spec.maxPositionEmbeddings), kvCache);
    const read = fileReadRate(model.checkpoint.files.map((f) => f.path));
    const alloc = new Allocator(device);
    const cmds = new Commands(device);
    const t0 = performance.now();
    const w = loadWeights(model, alloc, cmds, opts.onProgress);
    const seconds = (performance.now() - t0) / 1000;
    const peakRssBytes = process.resourceUsage().maxRSS * 1024; // before the read-back, which holds tensors in RAM
    const verified = verify(model, w, alloc, cmds, opts.verifyTensors ?? 12);
    const heaps = device.info.heaps.map((h) => {
      const u = alloc.usage.get(h.index);
      return { heap: h.index, deviceLocal: h.deviceLocal, size: h.size, bytes: u?.bytes ?? 0, buffers: u?.buffers ?? 0 };
    });
    w.free();
    return {
      model: model.dir,
      device: device.info.name,
      bytes: w.bytes,
      tensors: model.bound.tensors.size,
      seconds,
      gbPerSecond: w.bytes / 1e9 / seconds,
      fileReadGbPerSecond: read,
      heaps,
      peakRssBytes,
      cpuDevice: device.info.type === 'cpu',
      verified,
    };
  } finally {
    device.destroy();
    model.checkpoint.close();
  }
}
