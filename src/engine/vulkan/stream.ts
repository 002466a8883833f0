/**
 * Streams tensors from safetensors files into GPU buffers. Where the destination is host-visible
 * (APUs, resizable BAR, lavapipe) the file is read straight into the mapped memory: no host copy at
 * all. Otherwise bytes go through two staging buffers in turn: while the GPU copies one chunk, the
 * next is read from disk into the other. Host memory stays bounded by the staging size whatever the
 * model size.
 */
import type { SafetensorsFile } from '../formats/safetensors.js';
import { Commands } from './commands.js';
import type { Device } from './device.js';
import type { Allocator, GpuBuffer } from './memory.js';

export interface StreamStats {
  bytes: number;
  direct: number;
  staged: number;
  seconds: number;
}

export class TensorStreamer {
  private readonly staging: GpuBuffer[];
  private readonly cmds: Commands[];
  private next = 0;
  readonly stats: StreamStats = { bytes: 0, direct: 0, staged: 0, seconds: 0 };

  /** Bytes per read (and per staging buffer): at most what the device allocates at once. */
  readonly chunkBytes: number;

  /** `forceStaging` sends even host-visible destinations through staging (tests). */
  constructor(
    device: Device,
    private readonly alloc: Allocator,
    chunkBytes = 64 << 20,
    private readonly forceStaging = false,
  ) {
    // Rounded down to 256 bytes: the allocator rounds a size up to its alignment, and an allocation
    // limit that is not a multiple of it (UNICORN_DEVICE_LIMITS in tests) must still fit.
    this.chunkBytes = Math.max(256, Math.floor(Math.min(chunkBytes, device.info.maxMemoryAllocationSize) / 256) * 256);
    this.staging = [0, 1].map((i) => alloc.alloc(this.chunkBytes, `staging ${i}`, 'host'));
    this.cmds = [new Commands(device), new Commands(device)];
  }

  /** Copies a tensor (or `length` bytes of it from `start`) into `dst` at `dstOffset`. */
  upload(file: SafetensorsFile, name: string, dst: GpuBuffer, dstOffset = 0, start = 0, length?: number): void {
    const t0 = performance.now();
    const total = length ?? file.tensor(name).byteLength - start;
    if (dstOffset + total > dst.size) throw new RangeError(`${name}: ${total} bytes do not fit ${dst.label} at offset ${dstOffset}`);
    if (dst.mapped !== null && !this.forceStaging) {
      // Straight into the mapped memory, a chunk at a time: no view or read past chunkBytes at once
      // (a 2.8 GB embedding table is one tensor).
      for (let done = 0; done < total; done += this.chunkBytes) {
        const n = Math.min(this.chunkBytes, total - done);
        file.read(name, this.alloc.view(dst, dstOffset + done, n), 0, start + done, n);
      }
      this.stats.direct += total;
    } else {
      for (let done = 0; done < total; done += this.chunkBytes) {
        const n = Math.min(this.chunkBytes, total - done);
        const i = this.next;
        this.next = 1 - i;
        const cmds = this.cmds[i]!;
        cmds.wait(); // this staging buffer's previous copy must be done before it is overwritten
        file.read(name, this.alloc.view(this.staging[i]!, 0, n), 0, start + done, n);
        cmds
          .begin()
          .copy(this.staging[i]!, dst, n, 0, dstOffset + done)
          .barrier();
        cmds.submit();
      }
      this.stats.staged += total;
    }
    this.stats.bytes += total;
    this.stats.seconds += (performance.now() - t0) / 1000;
  }

  /** Waits for every copy in flight. Call before using the uploaded buffers. */
  finish(): void {
    const t0 = performance.now();
    for (const c of this.cmds) c.wait();
    this.stats.seconds += (performance.now() - t0) / 1000;
  }

  dispose(): void {
    this.finish();
    for (const s of this.staging) this.alloc.free(s);
  }
}
