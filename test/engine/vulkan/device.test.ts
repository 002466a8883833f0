import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type DeviceInfo, chooseDevice, validationEnabled } from '../../../src/engine/vulkan/device.js';
import { VK, VulkanError, vk } from '../../../src/engine/vulkan/ffi.js';
import { takeValidationMessages, validationAvailable } from '../../../src/engine/vulkan/validation.js';
import { OutOfDeviceMemoryError } from '../../../src/engine/vulkan/memory.js';
import { openGpu } from '../../support/gpu.js';

const fake = (index: number, name: string, type: DeviceInfo['type'], computeQueueFamily = 0) => ({ index, name, type, computeQueueFamily }) as DeviceInfo;
const lavapipe = fake(0, 'llvmpipe (LLVM 15.0.6, 256 bits)', 'cpu');
const igpu = fake(1, 'AMD Radeon 780M (RADV GFX1103_R1)', 'integrated-gpu');
const dgpu = fake(2, 'NVIDIA H100 80GB HBM3', 'discrete-gpu');

test('a real GPU is chosen before lavapipe, a discrete one before an integrated one', () => {
  assert.equal(chooseDevice([lavapipe, igpu]).index, 1);
  assert.equal(chooseDevice([lavapipe, igpu, dgpu]).index, 2);
  assert.equal(chooseDevice([lavapipe]).index, 0);
});

test('--gpu / UNICORN_GPU pick by index or by part of the name', () => {
  assert.equal(chooseDevice([lavapipe, igpu], '0').index, 0);
  assert.equal(chooseDevice([lavapipe, igpu], 'llvmpipe').index, 0);
  assert.equal(chooseDevice([lavapipe, igpu], '780m').index, 1);
  assert.throws(() => chooseDevice([lavapipe, igpu], 'arc'), /no Vulkan device matches "arc"; found: 0: llvmpipe .*, 1: AMD Radeon 780M/);
});

test('no usable device is one clear error with the fix', () => {
  assert.throws(
    () => chooseDevice([]),
    (e: unknown) => e instanceof VulkanError && /no Vulkan device with a compute queue/.test(e.message) && /mesa-vulkan-drivers/.test(e.hint ?? ''),
  );
  assert.throws(() => chooseDevice([fake(0, 'x', 'cpu', -1)]), VulkanError);
});

const gpu = openGpu();
after(() => gpu.device.destroy());

test(`the device record of ${gpu.device.info.name} has what the kernels are chosen from`, () => {
  const i = gpu.device.info;
  assert.ok(i.subgroupSize >= 1 && i.maxStorageBufferRange > 0 && i.maxComputeWorkGroupCount.length === 3);
  assert.ok(i.heaps.length > 0 && i.memoryTypes.length > 0);
  assert.ok(i.memoryTypes.every((t) => t.heap < i.heaps.length));
});

test('memory: sub-allocated from blocks, counted per heap; too much is a clear out-of-memory error', () => {
  const a = gpu.alloc.alloc(1000, 'a');
  const b = gpu.alloc.alloc(5000, 'b');
  const u = gpu.alloc.usage.get(a.heap)!;
  assert.ok(u.buffers >= 2 && u.bytes >= 6000);
  assert.ok(u.blocksBytes >= u.bytes);
  const bytes = new Uint8Array(5000).map((_, i) => i % 251);
  if (b.mapped !== null) {
    gpu.alloc.write(b, bytes);
    assert.deepEqual(gpu.alloc.read(b, new Uint8Array(5000)), bytes);
  }
  // A request larger than every heap: refused before anything is allocated, on any device.
  const info = gpu.device.info;
  const request = Math.max(...info.heaps.map((h) => h.size)) + 2 ** 20;
  if (request <= info.maxMemoryAllocationSize) {
    assert.throws(
      () => gpu.alloc.alloc(request, 'too big'),
      (e: unknown) => e instanceof OutOfDeviceMemoryError && /out of GPU memory: too big needs [\d.]+ MiB .* heap 0 \(/.test(e.message),
    );
  } else {
    assert.throws(() => gpu.alloc.alloc(request, 'too big'), /^VulkanError: too big: \d+ bytes is more than this device can allocate at once \(\d+ bytes\)$/);
    // Still reach the out-of-memory path on small devices (lavapipe: one 2 GiB heap, nothing is allocated).
    if (info.heaps.reduce((t, h) => t + h.size, 0) <= 8 * 2 ** 30)
      assert.throws(
        () => {
          for (let n = 0; n < 4; n++) gpu.alloc.alloc(info.maxMemoryAllocationSize, `big ${n}`);
        },
        (e: unknown) => e instanceof OutOfDeviceMemoryError && /out of GPU memory: big 0 needs/.test(e.message),
      );
  }
  gpu.alloc.free(a);
  gpu.alloc.free(b);
});

test('memory freed is reused: many allocate/free rounds take no new blocks', () => {
  const blocks = () => [...gpu.alloc.usage.values()].reduce((t, u) => t + u.blocksBytes, 0);
  const keep = gpu.alloc.alloc(3000, 'keep');
  // One round of each placement first: host placement may open its own (mapped) block once.
  for (const p of ['device', 'host'] as const) gpu.alloc.free(gpu.alloc.alloc(16 << 20, `warm-up ${p}`, p));
  const before = blocks();
  // 640 MiB in total (more than a 256 MiB block), in rounds of 16 MiB freed each time: no block growth.
  for (let i = 0; i < 40; i++) gpu.alloc.free(gpu.alloc.alloc(16 << 20, `round ${i}`, i % 2 === 0 ? 'device' : 'host'));
  const x = gpu.alloc.alloc(5000, 'x');
  const y = gpu.alloc.alloc(7000, 'y');
  gpu.alloc.free(x);
  const z = gpu.alloc.alloc(4000, 'z'); // fits where x was
  assert.equal(blocks(), before);
  for (const b of [keep, y, z]) gpu.alloc.free(b);
});

test('tests run under Khronos validation when it is installed, and it catches invalid calls', () => {
  assert.equal(validationEnabled(), validationAvailable());
  if (!validationEnabled()) return;
  takeValidationMessages();
  const out: [bigint | null] = [null];
  // A zero-sized buffer is invalid (VUID-VkBufferCreateInfo-size-00912).
  vk().vkCreateBuffer(
    gpu.device.handle,
    {
      sType: VK.ST_BUFFER_CREATE_INFO,
      pNext: null,
      flags: 0,
      size: 0,
      usage: VK.BUFFER_USAGE_STORAGE,
      sharingMode: 0,
      queueFamilyIndexCount: 0,
      pQueueFamilyIndices: null,
    },
    null,
    out,
  );
  if (out[0] !== null) vk().vkDestroyBuffer(gpu.device.handle, out[0], null);
  const caught = takeValidationMessages();
  assert.ok(
    caught.some((m) => m.severity === 'error' && /size/.test(m.message)),
    JSON.stringify(caught).slice(0, 300),
  );
});

test('a second begin() while recording is refused, not a silently dropped recording', () => {
  gpu.cmds.begin();
  assert.throws(() => gpu.cmds.begin(), /a recording is already open/);
  gpu.cmds.submitAndWait();
});
