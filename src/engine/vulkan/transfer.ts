/**
 * Moving bytes between host arrays and GPU buffers, directly when mapped, else through a staging
 * buffer of at most STAGING_BYTES, reused chunk by chunk: any size moves with bounded host memory
 * and never asks the device for an allocation larger than that.
 */
import type { Commands } from './commands.js';
import type { Allocator, GpuBuffer } from './memory.js';

/** The largest staging buffer upload and download allocate. */
export const STAGING_BYTES = 64 << 20;

function stagingFor(alloc: Allocator, bytes: number, label: string, chunk: number): GpuBuffer {
  return alloc.alloc(Math.max(16, Math.min(bytes, chunk, alloc.device.info.maxMemoryAllocationSize)), label, 'host');
}

export function upload(alloc: Allocator, cmds: Commands, dst: GpuBuffer, bytes: Uint8Array, dstOffset = 0, chunk = STAGING_BYTES): void {
  if (dst.mapped !== null) {
    alloc.write(dst, bytes, dstOffset);
    return;
  }
  const staging = stagingFor(alloc, bytes.byteLength, `staging for ${dst.label}`, chunk);
  try {
    for (let done = 0; done < bytes.byteLength; done += staging.size) {
      const n = Math.min(staging.size, bytes.byteLength - done);
      alloc.write(staging, bytes.subarray(done, done + n));
      cmds
        .begin()
        .copy(staging, dst, n, 0, dstOffset + done)
        .barrier()
        .submitAndWait();
    }
  } finally {
    alloc.free(staging);
  }
}

export function download(alloc: Allocator, cmds: Commands, src: GpuBuffer, dst: Uint8Array, srcOffset = 0, chunk = STAGING_BYTES): Uint8Array {
  // Mapped and cached: read it. Mapped but uncached (VRAM through the BAR, an APU's carve-out): a GPU
  // copy into cached host memory is far faster than the CPU reading it.
  if (src.mapped !== null && src.hostCached) return alloc.read(src, dst, srcOffset);
  const staging = stagingFor(alloc, dst.byteLength, `read-back of ${src.label}`, chunk);
  try {
    for (let done = 0; done < dst.byteLength; done += staging.size) {
      const n = Math.min(staging.size, dst.byteLength - done);
      cmds
        .begin()
        .barrier()
        .copy(src, staging, n, srcOffset + done, 0)
        .barrier()
        .submitAndWait();
      alloc.read(staging, dst.subarray(done, done + n));
    }
    return dst;
  } finally {
    alloc.free(staging);
  }
}

/** Allocates a device buffer holding `bytes`. */
export function uploadNew(alloc: Allocator, cmds: Commands, bytes: Uint8Array, label: string): GpuBuffer {
  const buf = alloc.alloc(Math.max(bytes.byteLength, 16), label);
  upload(alloc, cmds, buf, bytes);
  return buf;
}
