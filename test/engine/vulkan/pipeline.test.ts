import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { kernelFor } from '../../../src/engine/vulkan/pipeline.js';
import { download, upload } from '../../../src/engine/vulkan/transfer.js';
import { openGpu } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());

test('descriptor sets: the same ranges give the same set, pools grow past 256 sets, and freeing a buffer frees its sets', () => {
  const k = kernelFor(gpu.device, { variant: 'copy', bindings: 2, pushBytes: 4, spec: [64] });
  const before = k.liveSets;
  const src = gpu.alloc.alloc(64 * 16, 'src');
  const dsts = Array.from({ length: 300 }, (_, i) => gpu.alloc.alloc(64 * 16, `dst ${i}`));
  const sets = dsts.map((d) => k.bind([{ buffer: src }, { buffer: d }]));
  assert.equal(new Set(sets).size, 300, 'distinct ranges, distinct sets');
  assert.equal(k.bind([{ buffer: src }, { buffer: dsts[7]! }]), sets[7], 'same ranges, same set');
  assert.notEqual(k.bind([{ buffer: src, size: 512 }, { buffer: dsts[7]! }]), sets[7], 'another range, another set');
  assert.equal(k.liveSets, before + 301);
  // Every set still works: copy through the last one.
  const data = Uint32Array.from({ length: 256 }, (_, i) => i * 7 + 1);
  upload(gpu.alloc, gpu.cmds, src, new Uint8Array(data.buffer));
  gpu.cmds.begin();
  gpu.cmds.dispatch(k, sets[299]!, new Uint32Array([64]), [1, 1]);
  gpu.cmds.submitAndWait();
  const got = new Uint32Array(256);
  download(gpu.alloc, gpu.cmds, dsts[299]!, new Uint8Array(got.buffer));
  assert.deepEqual(got, data);
  for (const d of dsts) gpu.alloc.free(d);
  assert.equal(k.liveSets, before + 0, 'the sets naming freed buffers are gone (the src-only ones too, as they named a dst)');
  gpu.alloc.free(src);
  // Freed sets are reused: 300 more fit in the pools already made.
  const again = Array.from({ length: 300 }, (_, i) => gpu.alloc.alloc(16, `again ${i}`));
  for (const b of again) k.bind([{ buffer: b }, { buffer: b }]);
  assert.equal(k.liveSets, before + 300);
  for (const b of again) gpu.alloc.free(b);
  assert.equal(k.liveSets, before);
});
