/** Moving bytes between host arrays and GPU buffers, directly when mapped, else through staging. */
import type { Commands } from './commands.js';
import type { Allocator, GpuBuffer } from './memory.js';

export function upload(alloc: Allocator, cmds: Commands, dst: GpuBuffer, bytes: Uint8Array, dstOffset = 0): void {
  if (dst.mapped !== null) {
    alloc.write(dst, bytes, dstOffset);
    return;
  }
  const staging = alloc.alloc(bytes.byteLength, `staging for ${dst.label}`, 'host');
  try {
    alloc.write(staging, bytes);
    cmds.begin().copy(staging, dst, bytes.byteLength, 0, dstOffset).barrier().submitAndWait();
  } finally {
    alloc.free(staging);
  }
}

export function download(alloc: Allocator, cmds: Commands, src: GpuBuffer, dst: Uint8Array, srcOffset = 0): Uint8Array {
  if (src.mapped !== null) return alloc.read(src, dst, srcOffset);
  const staging = alloc.alloc(dst.byteLength, `read-back of ${src.label}`, 'host');
  try {
    cmds.begin().barrier().copy(src, staging, dst.byteLength, srcOffset, 0).barrier().submitAndWait();
    return alloc.read(staging, dst);
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
