/**
 * The fit check's suggestions and the KV cache type (src/engine/generate/fit.ts): `--kv-cache q8`
 * offered, with its total, where the cache is f16, the heads take q8 and q8 fits; every other
 * suggestion counted at the asked cache type. (The f16 refusal itself: test/commands/load.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DoesNotFitError, checkFits } from '../../../src/engine/generate/fit.js';
import { type KvCacheType, kvCacheBytes, kvCacheRefusal, memoryPlan } from '../../../src/engine/models/memory.js';
import { type ModelFiles, openModel } from '../../../src/engine/models/model-dir.js';
import type { DeviceInfo } from '../../../src/engine/vulkan/device.js';
import { modelFixture } from '../../support/paths.js';

const gemma = openModel(modelFixture('gemma3-text')); // head_dim 32: takes q8
const llama = openModel(modelFixture('llama')); // head_dim 16: does not
after(() => {
  gemma.checkpoint.close();
  llama.checkpoint.close();
});

const weightsOf = (m: ModelFiles) => [...m.bound.tensors.values()].reduce((a, t) => a + t.byteLength + (t.quant?.params.byteLength ?? 0), 0);
const MB = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
/** A one-heap device that leaves `usable` bytes after the check's reserve (5% and 256 MB). */
const gpu = (usable: number) =>
  ({ name: 'a small GPU', heaps: [{ index: 0, size: (usable + 256e6) / 0.95, deviceLocal: true, budget: null, usage: null }] }) as unknown as DeviceInfo;
/** The hint of the DoesNotFitError checkFits throws (fails the test where it fits). */
function hintOf(m: ModelFiles, usable: number, ctx: number, kv?: KvCacheType): { message: string; hint: string } {
  try {
    checkFits(m, gpu(usable), ctx, kv);
  } catch (e) {
    assert.ok(e instanceof DoesNotFitError, String(e));
    return { message: e.message, hint: e.hint ?? '' };
  }
  assert.fail(`fits at ${usable} bytes`);
}

test('--kv-cache q8 is suggested, with its total, where f16 does not fit and q8 does; asked for, q8 then fits', () => {
  const ctx = gemma.spec.maxPositionEmbeddings;
  const w = weightsOf(gemma);
  const f16 = w + kvCacheBytes(gemma.spec, ctx, 'f16');
  const q8 = w + kvCacheBytes(gemma.spec, ctx, 'q8');
  assert.ok(q8 < f16);
  const usable = (q8 + f16) / 2;
  const { message, hint } = hintOf(gemma, usable, ctx);
  assert.match(hint, /^what fits: /);
  assert.ok(hint.includes(`--kv-cache q8 (${MB(q8)})`), hint);
  assert.doesNotMatch(message, /, q8\)/, 'an f16 cache is not named');
  checkFits(gemma, gpu(usable), ctx, 'q8');
});

test('no --kv-cache q8 where it would not fit, where the cache is already q8, or where the heads do not take q8', () => {
  const ctx = gemma.spec.maxPositionEmbeddings;
  const w = weightsOf(gemma);
  const q8 = w + kvCacheBytes(gemma.spec, ctx, 'q8');
  assert.doesNotMatch(hintOf(gemma, q8 - 1000, ctx).hint, /--kv-cache/, 'q8 does not fit either');
  const asked = hintOf(gemma, q8 - 1000, ctx, 'q8');
  assert.doesNotMatch(asked.hint, /--kv-cache/, 'already q8');
  assert.match(asked.message, /KV cache [\d.]+ MB at --ctx 256, q8\)/, 'the message names the q8 cache');
  // llama: q8 would fit by its bytes, but head_dim 16 is not a multiple of 32.
  assert.equal(kvCacheRefusal(llama.spec, 'q8') === undefined, false);
  assert.equal(kvCacheRefusal(gemma.spec, 'q8'), undefined);
  const lctx = llama.spec.maxPositionEmbeddings;
  const lw = weightsOf(llama);
  const lusable = (lw + kvCacheBytes(llama.spec, lctx, 'q8') + lw + kvCacheBytes(llama.spec, lctx, 'f16')) / 2;
  assert.doesNotMatch(hintOf(llama, lusable, lctx).hint, /--kv-cache/);
});

test('the scheme suggestions count the asked cache type', () => {
  const ctx = gemma.spec.maxPositionEmbeddings;
  const w = weightsOf(gemma);
  const usable = w - 1000; // the weights alone do not fit: only quantized schemes
  for (const kv of ['f16', 'q8'] as const) {
    const int8 = memoryPlan(gemma.spec, ctx, 64, kv).find((r) => r.scheme === 'int8')!;
    assert.ok(int8.total < usable);
    const { hint } = hintOf(gemma, usable, ctx, kv);
    assert.ok(hint.includes(`int8 (${MB(int8.total)}: unicorn quantize --scheme int8)`), `${kv}: ${hint}`);
  }
});
