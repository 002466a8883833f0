import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { Allocator } from '../../../src/engine/vulkan/memory.js';
import { TensorStreamer } from '../../../src/engine/vulkan/stream.js';
import { download, upload } from '../../../src/engine/vulkan/transfer.js';
import { modelFixture } from '../../support/paths.js';
import { openGpu } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());

for (const forceStaging of [false, true]) {
  test(`every tensor of a checkpoint streams into GPU memory byte for byte, in 4 KiB chunks (${forceStaging ? 'through staging' : 'straight into mapped memory where possible'})`, () => {
    const file = SafetensorsFile.open(path.join(modelFixture('gemma3-text'), 'model.safetensors'));
    // A mapping allocator for the direct path (host-visible device memory, as on an APU).
    const alloc = forceStaging ? gpu.alloc : new Allocator(gpu.device, { mapDeviceMemory: true });
    const s = new TensorStreamer(gpu.device, alloc, 4096, forceStaging);
    const placed = file.tensors.map((t) => {
      const buf = alloc.alloc(Math.max(16, t.byteLength), t.name);
      s.upload(file, t.name, buf);
      return { t, buf };
    });
    s.finish();
    for (const { t, buf } of placed) {
      // Read back through a 1000-byte staging buffer, reused chunk by chunk, where the memory is not mapped.
      const got = download(alloc, gpu.cmds, buf, new Uint8Array(t.byteLength), 0, 1000);
      assert.deepEqual(got, file.readAll(t.name), t.name);
    }
    assert.equal(
      s.stats.bytes,
      file.tensors.reduce((a, t) => a + t.byteLength, 0),
    );
    if (forceStaging) assert.equal(s.stats.direct, 0);
    else if (gpu.device.info.memoryTypes.some((m) => m.deviceLocal && m.hostVisible)) assert.equal(s.stats.staged, 0);
    s.dispose();
    file.close();
  });
}

test('upload and download of host arrays go through a bounded staging buffer, chunk by chunk, at offsets', () => {
  const bytes = Uint8Array.from({ length: 10_007 }, (_, i) => (i * 31 + 7) & 0xff);
  const buf = gpu.alloc.alloc(12_000, 'target');
  upload(gpu.alloc, gpu.cmds, buf, bytes, 96, 1000);
  const got = download(gpu.alloc, gpu.cmds, buf, new Uint8Array(bytes.byteLength), 96, 999);
  assert.deepEqual(got, bytes);
  gpu.alloc.free(buf);
});
