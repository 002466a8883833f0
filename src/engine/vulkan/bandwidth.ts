/**
 * The baseline every GPU benchmark (and unicorn doctor's self-test) divides by: a compute-shader copy
 * between device-local buffers.
 */
import { Commands } from './commands.js';
import type { Device } from './device.js';
import type { Allocator } from './memory.js';
import { KERNELS } from '../kernels/table.js';
import { grid, kernelFor } from './pipeline.js';

/**
 * Best time per repetition of `record` (reps in one command buffer, best of `tries` submits; `record`
 * gets the repetition's index, to rotate over copies of its inputs). Chained (the default): a barrier
 * after each repetition, so each waits for the one before, as the steps of a decode do; the time then
 * includes the device's fixed cost of a dependent dispatch. Not chained: the repetitions are
 * independent and the GPU may overlap one's tail with the next one's start (the kernel's own rate).
 */
export function timeBest(cmds: Commands, record: (rep: number) => void, reps: number, tries: number, chained = true): number {
  cmds.begin({ reusable: true });
  for (let i = 0; i < reps; i++) {
    record(i);
    if (chained) cmds.barrier();
  }
  cmds.end();
  cmds.submitAndWait(); // warm-up
  let best = Infinity;
  for (let t = 0; t < tries; t++) {
    const start = process.hrtime.bigint();
    cmds.submitAndWait();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return best / reps;
}

/** Copy rate in GB/s (bytes read + written) of `bytes` per buffer, by a compute shader; and by vkCmdCopyBuffer. */
export function copyBandwidth(device: Device, alloc: Allocator, bytes: number, reps = 10): { shader: number; dma: number; bytes: number } {
  const cmds = new Commands(device);
  const words = Math.floor(Math.min(bytes, Math.floor(device.info.maxMemoryAllocationSize / 2), device.info.maxStorageBufferRange - 15) / 16);
  const src = alloc.alloc(words * 16, 'copy source');
  const dst = alloc.alloc(words * 16, 'copy destination');
  try {
    const k = kernelFor(device, KERNELS.copy, {}, { workgroup: 256 });
    const set = k.bind({ src, dst });
    const groups = grid(Math.min(Math.ceil(words / 256), 65535), device.info.maxComputeWorkGroupCount[0]!);
    const shader = timeBest(cmds, () => cmds.dispatch(k, set, k.push({ n: words }), groups), reps, 5);
    const dma = timeBest(cmds, () => cmds.copy(src, dst, words * 16), reps, 5);
    return { shader: (2 * words * 16) / shader / 1e9, dma: (2 * words * 16) / dma / 1e9, bytes: words * 16 };
  } finally {
    alloc.free(src);
    alloc.free(dst);
  }
}

/**
 * The device's copy rate in GB/s (compute shader, read + write), with a buffer sized for the device:
 * 256 MiB (well past a GPU's last-level cache), 10 repetitions; on a CPU driver 16 MiB, 2 (lavapipe
 * copies at a few GB/s, and its figure only says the path works). The baseline of doctor's self-test
 * and of `unicorn bench`.
 */
export function deviceCopyRate(device: Device, alloc: Allocator): number {
  const cpu = device.info.type === 'cpu';
  return copyBandwidth(device, alloc, cpu ? 16 << 20 : 256 << 20, cpu ? 2 : 10).shader;
}
