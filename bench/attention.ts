/**
 * npm run bench:attention — decode attention (one token over the KV cache, f16 and q8) in µs per layer
 * and in GB/s of keys and values read (q8: its scales included), as a share of a device-local copy measured in the same run: the kernel
 * with the query heads of a kv head folded into one workgroup (attention_decode.comp, the default where
 * its check passes) and one workgroup per query head (attention.comp, UNICORN_DECODE_ATTENTION=per-head),
 * each with the split count the engine uses (attentionSplits, foldedSplits) and the folded kernel at 32,
 * 64 and 128 splits besides. A benchmark, not a test: run it on a GPU.
 *
 * Chained dispatches (a barrier after each, as in a decode step), the split results folded by the
 * combine pass included; the measurement rotates over copies of the cache that together exceed 256 MiB,
 * so each dispatch reads its keys and values from memory, as a decode step does when the other layers'
 * caches have passed through the last-level cache since.
 *   node dist/bench/attention.js [--quick] [--contexts=1024,4096,...] [--shapes=8b,4b,27b] [--kv=f16,q8]
 */
import { type KvBuffers, Ops, allocKv, attentionSplits, foldedSplits, freeKv } from '../src/engine/kernels/ops.js';
import { type KvCacheType, kvRowBytes } from '../src/engine/models/memory.js';
import { Commands } from '../src/engine/vulkan/commands.js';
import { Device } from '../src/engine/vulkan/device.js';
import { Allocator } from '../src/engine/vulkan/memory.js';
import { copyBandwidth, timeBest } from '../src/engine/vulkan/bandwidth.js';
import { fillRandom } from './fill.js';

const quick = process.argv.includes('--quick');
const contexts = (process.argv.find((a) => a.startsWith('--contexts='))?.slice(11) ?? (quick ? '256,1024' : '1024,4096,16384,32768,131072'))
  .split(',')
  .map(Number);
const kvTypes = (process.argv.find((a) => a.startsWith('--kv='))?.slice(5) ?? 'f16,q8').split(',') as KvCacheType[];
for (const t of kvTypes) if (t !== 'f16' && t !== 'q8') throw new Error(`--kv=${t}: f16 or q8`);
const device = Device.open(process.argv.find((a) => a.startsWith('--gpu='))?.slice(6));
const alloc = new Allocator(device, { blockSize: 1 << 30 });
const cmds = new Commands(device);
// The folded kernel at every context (the engine takes it from 2,048 positions), per head, and the engine's own choice.
const folded = new Ops(device, alloc, { foldedFrom: 1 });
const engine = new Ops(device, alloc);
process.env['UNICORN_DECODE_ATTENTION'] = 'per-head';
const perHead = new Ops(device, alloc);
delete process.env['UNICORN_DECODE_ATTENTION'];
const COLD_BYTES = quick ? 0 : 256 << 20;

const baseline = copyBandwidth(device, alloc, quick ? 64 << 20 : 1 << 30, quick ? 2 : 10);
console.log(`device: ${device.info.name} (${device.info.driverName} ${device.info.driverInfo}), subgroup ${device.info.subgroupSize}`);
console.log(`baseline, copy by compute shader: ${baseline.shader.toFixed(0)} GB/s (read + write)`);

const shapes = [
  { name: 'Llama 3.1 8B', heads: 32, kvHeads: 8, headDim: 128 },
  { name: 'Gemma 3 4B', heads: 8, kvHeads: 4, headDim: 256 },
  { name: 'Gemma 3 27B', heads: 32, kvHeads: 16, headDim: 128 },
];
const only = process.argv
  .find((a) => a.startsWith('--shapes='))
  ?.slice(9)
  .split(',');
for (const sh of shapes.filter((x) => only === undefined || only.some((o) => x.name.toLowerCase().includes(o.toLowerCase())))) {
  console.log(`\n${sh.name}: ${sh.heads} heads over ${sh.kvHeads}, head_dim ${sh.headDim}`);
  console.log("context   cache  kernel     splits   µs a layer   GB/s of K+V   of the copy rate   (* the engine's choice)");
  const q = alloc.alloc(sh.heads * sh.headDim * 4, 'q');
  const o = alloc.alloc(sh.heads * sh.headDim * 4, 'o');
  const pos = alloc.alloc(4, 'position');
  fillRandom(alloc, cmds, q, 'float32');
  for (const ctx of contexts) {
    for (const type of kvTypes) {
      const rows = sh.kvHeads * ctx;
      const cacheBytes = rows * (type === 'f16' ? 2 * sh.headDim : sh.headDim);
      const readBytes = 2 * rows * kvRowBytes(sh.headDim, type);
      if (cacheBytes > device.info.maxStorageBufferRange || cacheBytes > device.info.maxMemoryAllocationSize) continue;
      const copies = Math.max(1, Math.ceil(COLD_BYTES / readBytes));
      const caches: KvBuffers[] = [];
      for (let i = 0; i < copies; i++) {
        const c = allocKv(alloc, type, rows, sh.headDim, 'cache');
        if (i === 0) {
          fillRandom(alloc, cmds, c.k, type === 'f16' ? 'half' : 'bytes');
          fillRandom(alloc, cmds, c.v, type === 'f16' ? 'half' : 'bytes');
          if (c.scales !== null) {
            fillRandom(alloc, cmds, c.scales.k, 'float32');
            fillRandom(alloc, cmds, c.scales.v, 'float32');
          }
        } else {
          const c0 = caches[0]!;
          cmds.begin();
          cmds.copy(c0.k, c.k, cacheBytes).copy(c0.v, c.v, cacheBytes);
          if (c.scales !== null) cmds.copy(c0.scales!.k, c.scales.k, c.scales.k.size).copy(c0.scales!.v, c.scales.v, c.scales.v.size);
          cmds.submitAndWait();
        }
        caches.push(c);
      }
      cmds.begin();
      cmds.fill(pos, ctx - 1);
      cmds.submitAndWait();
      const base = attentionSplits(ctx);
      const chosen = foldedSplits(ctx, sh.kvHeads);
      const foldedSet = [...new Set([chosen, 32, 64, 128])];
      const part = alloc.alloc(sh.heads * Math.max(base, ...foldedSet) * (sh.headDim + 2) * 4, 'partials');
      const shape = { tokens: 1, heads: sh.heads, kvHeads: sh.kvHeads, headDim: sh.headDim, capacity: ctx, window: 0, scale: 0.08, softcap: 0 };
      const reps = quick ? 2 : Math.max(8, Math.min(200, Math.round(4e9 / readBytes)));
      // The folded kernel's check runs here, outside the timing; where it fails the device takes per head.
      const foldedRuns = folded.decodeSubgroups(shape, type) > 0;
      if (!foldedRuns)
        console.log(`${String(ctx).padStart(7)}   ${type}   folded: not taken here (${folded.foldedRefusal(shape, type) ?? 'its layout does not fit the shape or device'})`);
      const engineFolds = engine.decodeSubgroups(shape, type) > 0;
      for (const [name, ops, splits] of [
        [engineFolds ? 'per head' : 'per head *', perHead, base],
        ...(foldedRuns ? foldedSet.map((n) => [engineFolds && n === chosen ? 'folded *' : 'folded', folded, n] as const) : []),
      ] as const) {
        const s = timeBest(
          cmds,
          (rep) => {
            ops.attention(cmds, q, caches[rep % copies]!, pos, o, { ...shape, splits }, part);
          },
          reps,
          quick ? 1 : 5,
        );
        const us = s * 1e6; // timeBest: seconds a repetition
        const gbs = readBytes / s / 1e9;
        console.log(
          `${String(ctx).padStart(7)}   ${type}   ${name.padEnd(10)}  ${String(splits).padStart(6)}   ${us.toFixed(1).padStart(10)}   ${gbs.toFixed(0).padStart(11)}   ${((100 * gbs) / baseline.shader).toFixed(0).padStart(6)}%`,
        );
      }
      alloc.free(part);
      for (const c of caches) freeKv(alloc, c);
    }
  }
  for (const b of [q, o, pos]) alloc.free(b);
}
device.destroy();
