/** `unicorn load`, and the fit check every GPU command makes before loading. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { DoesNotFitError, checkFits } from '../../src/engine/generate/fit.js';
import { openModel } from '../../src/engine/models/model-dir.js';
import type { DeviceInfo } from '../../src/engine/vulkan/device.js';
import { BIN, modelFixture } from '../support/paths.js';

test('load reports placement per heap, speed against the file read rate, and weights identical on read-back', () => {
  const r = spawnSync(process.execPath, [BIN, 'load', modelFixture('gemma3-mm'), '--json', '--verify', '200'], {
    encoding: 'utf8',
    env: { ...process.env, UNICORN_VALIDATION: '0' },
  });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.tensors, 93);
  assert.equal(j.verified.tensors, 93, 'every tensor read back');
  assert.deepEqual(j.verified.mismatches, []);
  assert.ok(j.gbPerSecond > 0 && j.fileReadGbPerSecond > 0 && j.peakRssBytes > 0);
  const placed = j.heaps.reduce((a: number, h: { bytes: number }) => a + h.bytes, 0);
  assert.ok(placed >= j.bytes, `placed ${placed} >= weights ${j.bytes}`);
});

test('a model that does not fit is refused before loading, with what would fit', () => {
  const model = openModel(modelFixture('gemma3-text'));
  // 95% of the heap less 256 MB for activations and the driver leaves ~0.69 MB: the bf16 weights (0.87 MB) do not fit, INT8 does.
  const small = { name: 'a small GPU', heaps: [{ index: 0, size: 270.2e6, deviceLocal: true, budget: null, usage: null }] } as unknown as DeviceInfo;
  assert.throws(
    () => checkFits(model, small, 256),
    (e: unknown) => e instanceof DoesNotFitError && /needs 0\.9\d MB \(weights/.test(e.message) && /what fits: int8/.test(e.hint ?? ''),
  );
  const fits = { ...small, heaps: [{ index: 0, size: 8e9, deviceLocal: true, budget: null, usage: null }] } as unknown as DeviceInfo;
  checkFits(model, fits, 256);
  model.checkpoint.close();
});
