/**
 * A model larger than the device's limits, the way a Gemma 3 27B is on a real GPU (its 2.8 GB
 * embedding table, tied to the LM head, is over 2 GiB), in miniature: the device's storage-buffer
 * range and allocation size lowered (UNICORN_DEVICE_LIMITS) so that a fixture's tables and matrices
 * go into several allocations and bind in row ranges. Every logit must equal, bit for bit, what the
 * same model gives at the device's own limits: the split changes which dispatch computes a row,
 * never how.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { rowRanges } from '../../../src/engine/kernels/matvec.js';
import { matrixRowBytes, paramsRowBytes } from '../../../src/engine/kernels/weight-formats.js';
import { GpuBackend } from '../../../src/engine/models/gpu-backend.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { type GpuWeights, loadWeights } from '../../../src/engine/models/weights.js';
import { quantizeModel } from '../../../src/engine/quant/quantize-model.js';
import { Commands } from '../../../src/engine/vulkan/commands.js';
import { Device } from '../../../src/engine/vulkan/device.js';
import { Allocator } from '../../../src/engine/vulkan/memory.js';
import { openGpu } from '../../support/gpu.js';
import { modelFixture, scratchDir } from '../../support/paths.js';

const gpu = openGpu();
after(() => gpu.device.destroy());

/** Limits under which the embedding table takes two or more parts of two or more row ranges each. */
function lowered(w: GpuWeights): { range: number; alloc: number } {
  const t = w.embedding.table;
  const embRow = matrixRowBytes(t.format, t.cols);
  const widest = Math.max(...[...w.matrices.values(), t].map((m) => Math.max(matrixRowBytes(m.format, m.cols), paramsRowBytes(m.format, m.cols, m.group))));
  const range = Math.ceil(widest / embRow) * 64 * embRow; // a multiple of 64 table rows, 64 of the widest rows at least
  return { range, alloc: Math.ceil((2 * range * 16) / 15) + 64 }; // parts of two ranges (rowsPerPart holds back 1/16)
}

function run(device: Device, dir: string, mapped: boolean, batch: number) {
  const alloc = new Allocator(device, { mapDeviceMemory: mapped });
  const cmds = new Commands(device);
  const model = openModel(dir);
  const weights = loadWeights(model, alloc, cmds);
  const backend = new GpuBackend(device, alloc, weights, model.spec, { ctx: 64, batch });
  const ids = [5, 17, 300, 42, 99, 7, 250, 128, 64, 3, 511, 0, 256, 255, 192, 191, 383, 384, 1, 2, 450, 77, 31, 8];
  // The prompt in steps of the backend's batch (a device with a small storage-buffer range takes fewer tokens a step).
  for (let at = 0; at + backend.batch < ids.length; at += backend.batch) backend.step(ids.slice(at, at + backend.batch), at, { kind: 'none' });
  const last = Math.floor((ids.length - 1) / backend.batch) * backend.batch;
  const logits: Float32Array[] = [backend.step(ids.slice(last), last, { kind: 'logits' }).logits!];
  let next = [...logits[0]!.keys()].reduce((a, b) => (logits[0]![b]! > logits[0]![a]! ? b : a), 0);
  for (let i = 0; i < 6; i++) {
    const l = backend.step([next], ids.length + i, { kind: 'logits' }).logits!;
    logits.push(l);
    next = [...l.keys()].reduce((a, b) => (l[b]! > l[a]! ? b : a), 0);
  }
  const close = () => { backend.dispose(); weights.free(); model.checkpoint.close(); };
  return { weights, backend, logits, close };
}

describe(`a model past the device's allocation size and storage-buffer range, on ${gpu.device.info.name}`, () => {
  const cases: [string, () => Promise<string>][] = [
    ['gemma3-text (bf16, tied LM head)', async () => modelFixture('gemma3-text')],
    ['llama (bf16, separate LM head)', async () => modelFixture('llama')],
    ['qwen2 quantized INT8 (INT8 table with per-row scales, tied)', async () => {
      const out = `${scratchDir('limits')}/q8`;
      await quantizeModel(modelFixture('qwen2'), out, { scheme: 'int8', group: 64, workers: 1 });
      return out;
    }],
  ];
  for (const [name, dirOf] of cases) {
    test(`${name}: split into allocations and row ranges, the same logits bit for bit (staged and direct uploads)`, async () => {
      const dir = await dirOf();
      const normal = run(gpu.device, dir, false, 32);
      const { range, alloc } = lowered(normal.weights);
      process.env['UNICORN_DEVICE_LIMITS'] = `maxStorageBufferRange=${range},maxMemoryAllocationSize=${alloc}`;
      const small = Device.open();
      delete process.env['UNICORN_DEVICE_LIMITS'];
      try {
        assert.equal(small.info.maxStorageBufferRange, range);
        assert.equal(small.info.maxMemoryAllocationSize, alloc);
        for (const mapped of [false, true]) {
          const split = run(small, dir, mapped, 32);
          try {
            const table = split.weights.embedding.table;
            assert.ok(table.parts.length >= 2, `the table is in ${table.parts.length} parts`);
            assert.ok(rowRanges(table, range).length >= 2 * table.parts.length - 1, 'parts are bound in several ranges');
            const tied = !split.weights.matrices.has('lm_head.weight');
            if (tied) assert.equal(split.weights.lmHead, table, 'the tied LM head is the table, parts and all');
            else assert.ok(split.weights.lmHead.parts.length >= 2);
            assert.ok(split.backend.batch <= 32);
            const again = split.backend.batch === 32 ? normal : run(gpu.device, dir, false, split.backend.batch);
            split.logits.forEach((l, i) => assert.deepEqual(l, again.logits[i], `${name}: logits of step ${i}`));
            if (again !== normal) again.close();
          } finally {
            split.close();
          }
        }
      } finally {
        normal.close();
        small.destroy();
      }
    });
  }

  test('UNICORN_DEVICE_LIMITS only lowers, and a malformed value is a clear error', () => {
    process.env['UNICORN_DEVICE_LIMITS'] = `maxStorageBufferRange=${2 ** 50}`;
    try {
      const d = Device.open();
      assert.equal(d.info.maxStorageBufferRange, gpu.device.info.maxStorageBufferRange);
      d.destroy();
      for (const bad of ['maxStorageBufferRange=0', 'maxStorageBufferRange=-4', 'subgroupSize=4', 'maxMemoryAllocationSize']) {
        process.env['UNICORN_DEVICE_LIMITS'] = bad;
        assert.throws(() => Device.open(), /UNICORN_DEVICE_LIMITS: '.*' is not <limit>=<positive integer> \(limits: maxStorageBufferRange, maxMemoryAllocationSize\)/);
      }
    } finally {
      delete process.env['UNICORN_DEVICE_LIMITS'];
    }
  });

  test('a context whose KV cache is past what one buffer binds is refused up front, with the context that fits', () => {
    const model = openModel(modelFixture('gemma3-text'));
    const weights = loadWeights(model, gpu.alloc, gpu.cmds);
    try {
      // 2 KV heads x 32 dims x 2 bytes = 128 bytes a position: 16,384 bytes hold 128 positions.
      process.env['UNICORN_DEVICE_LIMITS'] = 'maxStorageBufferRange=16384';
      const small = Device.open();
      delete process.env['UNICORN_DEVICE_LIMITS'];
      const alloc = new Allocator(small);
      const w = loadWeights(model, alloc, new Commands(small));
      assert.throws(() => new GpuBackend(small, alloc, w, model.spec, { ctx: 200 }), /--ctx 200: layer 5's keys take 25600 bytes, more than this device binds in one buffer \(16384 bytes\)/);
      const ok = new GpuBackend(small, alloc, w, model.spec, { ctx: 128 });
      ok.dispose();
      w.free();
      small.destroy();
    } finally {
      delete process.env['UNICORN_DEVICE_LIMITS'];
      weights.free();
      model.checkpoint.close();
    }
  });
});
