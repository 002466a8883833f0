/** Benchmark inputs: GPU buffers of pseudo-random words (bench:kernels, bench:matmul). */
import type { Commands } from '../src/engine/vulkan/commands.js';
import type { Allocator, GpuBuffer } from '../src/engine/vulkan/memory.js';
import { upload } from '../src/engine/vulkan/transfer.js';

/** Fills a buffer with pseudo-random words from a fixed seed; floats (f32, or pairs of halves) get exponents in a normal range. */
export function fillRandom(alloc: Allocator, cmds: Commands, buf: GpuBuffer, kind: 'float32' | 'half' | 'bytes'): void {
  const chunk = 16 << 20;
  const words = new Uint32Array(chunk / 4);
  let a = 12345;
  for (let off = 0; off < buf.size; off += chunk) {
    const n = Math.min(chunk, buf.size - off);
    for (let i = 0; i < n / 4; i++) {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      words[i] = kind === 'float32' ? (a & 0x807fffff) | 0x3c000000 : kind === 'half' ? (a & 0x83ff83ff) | 0x34003400 : a;
    }
    upload(alloc, cmds, buf, new Uint8Array(words.buffer, 0, n), off);
  }
}
