/**
 * One Vulkan device for a test file. On CI and developer machines without a GPU this is Mesa's
 * lavapipe: the same engine code path as on a GPU. No device is a failure, never a skip.
 */
import { Device } from '../../src/engine/vulkan/device.js';
import { Allocator } from '../../src/engine/vulkan/memory.js';
import { Commands } from '../../src/engine/vulkan/commands.js';

export interface Gpu {
  device: Device;
  alloc: Allocator;
  cmds: Commands;
}

export function openGpu(): Gpu {
  const device = Device.open();
  return { device, alloc: new Allocator(device), cmds: new Commands(device) };
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomFloats(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}
