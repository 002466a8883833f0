/**
 * One Vulkan device for a test file. On CI and developer machines without a GPU this is Mesa's
 * lavapipe: the same engine code path as on a GPU. No device is a failure, never a skip.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { Device, validationEnabled } from '../../src/engine/vulkan/device.js';
import { takeValidationMessages } from '../../src/engine/vulkan/validation.js';
import { Allocator } from '../../src/engine/vulkan/memory.js';
import { Commands } from '../../src/engine/vulkan/commands.js';
import type { GpuBuffer } from '../../src/engine/vulkan/memory.js';
import { download, uploadNew } from '../../src/engine/vulkan/transfer.js';

export interface Gpu {
  device: Device;
  alloc: Allocator;
  cmds: Commands;
}

/**
 * Opens the device with Khronos validation on when the layer is installed (CI installs it); the
 * test file fails if any Vulkan call was invalid.
 */
export function openGpu(): Gpu {
  process.env['UNICORN_VALIDATION'] ??= '1';
  const device = Device.open();
  after(() => {
    const errors = takeValidationMessages().filter((m) => m.severity === 'error');
    assert.deepEqual(errors, [], `Vulkan validation errors (validation ${validationEnabled() ? 'on' : 'off'})`);
  });
  // Device memory unmapped, as on a discrete GPU: uploads and read-backs take the staging paths.
  return { device, alloc: new Allocator(device, { mapDeviceMemory: false }), cmds: new Commands(device) };
}

/** A typed array's bytes. */
export const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A test file's moves on its device: put an array into a new buffer, read floats or u32s back, and
 * `run` (record, submit, wait; inputs must be uploaded before: an upload may itself use gpu.cmds).
 */
export function gpuIo(gpu: Gpu) {
  const read = <T extends Float32Array | Uint32Array>(b: GpuBuffer, out: T): T => {
    download(gpu.alloc, gpu.cmds, b, bytesOf(out));
    return out;
  };
  return {
    put: (a: ArrayBufferView, label = 'input') => uploadNew(gpu.alloc, gpu.cmds, bytesOf(a), label),
    getF32: (b: GpuBuffer, n: number) => read(b, new Float32Array(n)),
    getU32: (b: GpuBuffer, n: number) => read(b, new Uint32Array(n)),
    run: (record: () => void) => {
      gpu.cmds.begin();
      record();
      gpu.cmds.submitAndWait();
    },
  };
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
