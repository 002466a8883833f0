// Which flash-attention tilings pass their check on this device (scripts/device/flash.sh runs it first).
import { flashProblem, flashTiles } from '../../dist/src/engine/kernels/attention-coop.js';
import { openGpu } from '../../dist/test/support/gpu.js';
const gpu = openGpu();
for (const d of [64, 128, 256]) {
  const base = flashTiles(gpu.device.info, d);
  if (base === null) continue;
  for (const [nsg, bc, prefetch, split] of [
    [4, 32, 1, 0],
    [4, 32, 0, 0],
    [2, 32, 1, 0],
    [2, 32, 0, 0],
    [1, 32, 0, 0],
    [2, 32, 0, 1],
    [4, 32, 0, 1],
    [2, 32, 1, 1],
    [1, 32, 1, 1],
  ]) {
    const t = { ...base, nsg, bc, prefetch: prefetch === 1, split: split === 1 };
    let r;
    try {
      r = flashProblem(gpu.device, gpu.alloc, t, d) ?? 'right';
    } catch (e) {
      r = `cannot run: ${e.message}`;
    }
    console.log(`head_dim ${d} nsg ${nsg} bc ${bc} prefetch ${prefetch} split ${split}: ${r}`);
  }
}
gpu.device.destroy();
