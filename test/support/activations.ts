/**
 * Checks a producer's int8 activations (shaders/quant_act.glsl: rmsnorm, attention's combine pass, the
 * matrix x vector's QUANT_OUT) against what quantize_x makes of the same floats: the same bytes in both
 * orders, the same (scale, sum) per block of 32.
 */
import assert from 'node:assert/strict';
import type { MatVec } from '../../src/engine/kernels/matvec.js';
import type { GpuBuffer } from '../../src/engine/vulkan/memory.js';
import { download } from '../../src/engine/vulkan/transfer.js';
import type { Gpu } from './gpu.js';

export function assertQuantizedAs(gpu: Gpu, mv: MatVec, got: { q8: GpuBuffer; q4: GpuBuffer; s: GpuBuffer }, y: GpuBuffer, n: number, what: string): void {
  const words = (b: GpuBuffer, count: number) => {
    const out = new Uint32Array(count);
    download(gpu.alloc, gpu.cmds, b, new Uint8Array(out.buffer));
    return out;
  };
  // Read first: `got` may be the scratch quantize_x writes into.
  const mine = { q8: words(got.q8, n / 4), q4: words(got.q4, n / 4), s: words(got.s, (n / 32) * 2) };
  gpu.cmds.begin();
  const sep = mv.quantizeX(gpu.cmds, y, n, 'q8');
  const sep4 = mv.quantizeX(gpu.cmds, y, n, 'q4');
  gpu.cmds.submitAndWait();
  assert.deepEqual(mine.q8, words(sep.q, n / 4), `${what}: int8 words in natural order`);
  assert.deepEqual(mine.q4, words(sep4.q, n / 4), `${what}: int8 words in nibble order`);
  assert.deepEqual(mine.s, words(sep.s, (n / 32) * 2), `${what}: (scale, sum) per block`);
}
