import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { KERNELS } from '../../../src/engine/kernels/table.js';
import { kernelFor } from '../../../src/engine/vulkan/pipeline.js';
import { download, upload } from '../../../src/engine/vulkan/transfer.js';
import { openGpu } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());

test('descriptor sets: the same ranges give the same set, pools grow past 256 sets, and freeing a buffer frees its sets', () => {
  const k = kernelFor(gpu.device, KERNELS.copy, {}, { workgroup: 64 });
  const before = k.liveSets;
  const src = gpu.alloc.alloc(64 * 16, 'src');
  const dsts = Array.from({ length: 300 }, (_, i) => gpu.alloc.alloc(64 * 16, `dst ${i}`));
  const sets = dsts.map((d) => k.bind({ src, dst: d }));
  assert.equal(new Set(sets).size, 300, 'distinct ranges, distinct sets');
  assert.equal(k.bind({ src, dst: dsts[7]! }), sets[7], 'same ranges, same set');
  assert.notEqual(k.bind({ src: { buffer: src, size: 512 }, dst: dsts[7]! }), sets[7], 'another range, another set');
  assert.equal(k.liveSets, before + 301);
  // Every set still works: copy through the last one.
  const data = Uint32Array.from({ length: 256 }, (_, i) => i * 7 + 1);
  upload(gpu.alloc, gpu.cmds, src, new Uint8Array(data.buffer));
  gpu.cmds.begin();
  gpu.cmds.dispatch(k, sets[299]!, k.push({ n: 64 }), [1, 1]);
  gpu.cmds.submitAndWait();
  const got = new Uint32Array(256);
  download(gpu.alloc, gpu.cmds, dsts[299]!, new Uint8Array(got.buffer));
  assert.deepEqual(got, data);
  for (const d of dsts) gpu.alloc.free(d);
  assert.equal(k.liveSets, before + 0, 'the sets naming freed buffers are gone (the src-only ones too, as they named a dst)');
  gpu.alloc.free(src);
  // Freed sets are reused: 300 more fit in the pools already made.
  const again = Array.from({ length: 300 }, (_, i) => gpu.alloc.alloc(16, `again ${i}`));
  for (const b of again) k.bind({ src: b, dst: b });
  assert.equal(k.liveSets, before + 300);
  for (const b of again) gpu.alloc.free(b);
  assert.equal(k.liveSets, before);
});

test('kernels come from the table by name: a variant it lacks, a missing spec constant or binding or push field are refused, f32 push fields go as their bits', () => {
  // What the types refuse at compile time, refused at run time where a cast gets past them.
  assert.throws(
    () => kernelFor(gpu.device, KERNELS.embed, { format: 'q4' as 'q8' }, { workgroup: 64 }),
    /embed: no variant for format q4 \(there are f32, f16, bf16, q8\)/,
  );
  assert.throws(() => kernelFor(gpu.device, KERNELS.copy, {}, {} as { workgroup: number }), /copy: specialization constant workgroup is missing/);
  assert.throws(() => kernelFor(gpu.device, { ...KERNELS.copy }, {}, { workgroup: 64 }), /not in the table/);
  const k = kernelFor(gpu.device, KERNELS.softcap, {}, { workgroup: 64 });
  const b = gpu.alloc.alloc(16, 'x');
  assert.throws(() => k.bind({} as { x: typeof b }), /softcap: no buffer bound to x/);
  assert.throws(() => k.push({ n: 1 } as { n: number; cap: number }), /softcap: push constant cap is missing/);
  assert.deepEqual([...k.push({ n: 3, cap: 1 })], [3, 0x3f800000]);
  assert.equal(kernelFor(gpu.device, KERNELS.softcap, {}, { workgroup: 64 }), k, 'the same variant and constants, the same kernel');
  gpu.alloc.free(b);
});
