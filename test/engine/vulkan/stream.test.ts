import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { Allocator } from '../../../src/engine/vulkan/memory.js';
import { TensorStreamer } from '../../../src/engine/vulkan/stream.js';
import { download } from '../../../src/engine/vulkan/transfer.js';
import { modelFixture } from '../../support/paths.js';
import { openGpu } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());

for (const forceStaging of [false, true]) {
  test(`every tensor of a checkpoint streams into GPU memory byte for byte (${forceStaging ? 'through 4 KiB staging chunks' : 'straight into mapped memory where possible'})`, () => {
    const file = SafetensorsFile.open(path.join(modelFixture('gemma3-text'), 'model.safetensors'));
    // A mapping allocator for the direct path (host-visible device memory, as on an APU).
    const alloc = forceStaging ? gpu.alloc : new Allocator(gpu.device);
    const s = new TensorStreamer(gpu.device, alloc, 4096, forceStaging);
    const placed = file.tensors.map((t) => {
      const buf = alloc.alloc(Math.max(16, t.byteLength), t.name);
      s.upload(file, t.name, buf);
      return { t, buf };
    });
    s.finish();
    for (const { t, buf } of placed) {
      const got = download(alloc, gpu.cmds, buf, new Uint8Array(t.byteLength));
      assert.deepEqual(got, file.readAll(t.name), t.name);
    }
    assert.equal(s.stats.bytes, file.tensors.reduce((a, t) => a + t.byteLength, 0));
    if (forceStaging) assert.equal(s.stats.direct, 0);
    else if (gpu.device.info.memoryTypes.some((m) => m.deviceLocal && m.hostVisible)) assert.equal(s.stats.staged, 0);
    s.dispose();
    file.close();
  });
}
