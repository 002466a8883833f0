/**
 * npm run bench:matmul — the prefill matrix x matrix kernels in TFLOPS, as a share of the device's own
 * compute rates measured in the same run: f32 FMAs (shaders/peak.comp FMA: the ceiling of the tiled
 * kernel) and cooperative-matrix f16 products (peak.comp COOP: the ceiling of the cooperative kernel).
 * A benchmark, not a test: run it on a GPU.
 *
 *   node dist/bench/matmul.js [--tokens=512,4096] [--quick] [--gpu=<index|name>]
 *
 * Shapes: Llama 3.1 8B's projections (q and o 4096 x 4096, k and v 1024 x 4096, gate and up 14336 x
 * 4096, down 4096 x 14336); each timed as the best of several submits of a few back-to-back dispatches.
 */
import { MatMul, type MatMulKind, coopTiles } from '../src/engine/kernels/matmul.js';
import { fillRandom } from './fill.js';
import { type GpuMatrix, singleMatrix } from '../src/engine/kernels/matvec.js';
import { KERNELS } from '../src/engine/kernels/table.js';
import { type WeightFormat, matrixRowBytes, paramsRowBytes } from '../src/engine/kernels/weight-formats.js';
import { timeBest as timeBestIn } from '../src/engine/vulkan/bandwidth.js';
import { Commands } from '../src/engine/vulkan/commands.js';
import { Device } from '../src/engine/vulkan/device.js';
import { Allocator, type GpuBuffer } from '../src/engine/vulkan/memory.js';
import { kernelFor } from '../src/engine/vulkan/pipeline.js';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const device = Device.open(arg('gpu'));
const alloc = new Allocator(device, { blockSize: 1 << 30 });
const cmds = new Commands(device);
const quick = process.argv.includes('--quick');
const tokenCounts = (arg('tokens') ?? (quick ? '64' : '256,512')).split(',').map(Number);
const timeBest = (record: (rep: number) => void, reps: number, tries: number) => timeBestIn(cmds, record, reps, tries, false);

const fill = (buf: GpuBuffer, kind: 'float32' | 'half' | 'bytes') => fillRandom(alloc, cmds, buf, kind);

/** TFLOPS of peak.comp: f32 FMA chains, or cooperative-matrix products of the device's shape. */
function peak(unit: 'fma' | 'coop'): number {
  const t = coopTiles(device.info);
  const sg = device.info.subgroupSize;
  const workgroup = unit === 'coop' ? 4 * sg : 256;
  const k = kernelFor(device, KERNELS.peak, { unit }, { workgroup, tm: t?.tm ?? 16, tn: t?.tn ?? 16, tk: t?.tk ?? 16 });
  const groups = quick ? 64 : 8192;
  const out = alloc.alloc(groups * workgroup * 4, 'peak output');
  const iterations = quick ? 64 : 4096;
  const set = k.bind({ o: out });
  const s = timeBest(() => cmds.dispatch(k, set, k.push({ iterations, seed: 0.5 }), [groups, 1]), quick ? 1 : 4, quick ? 1 : 5);
  alloc.free(out);
  const flops = unit === 'fma' ? groups * workgroup * iterations * 16 : groups * (workgroup / sg) * iterations * 4 * 2 * t!.tm * t!.tn * t!.tk;
  return flops / s / 1e12;
}

console.log(`device  ${device.info.name} (${device.info.driverName}), subgroup ${device.info.subgroupSize}`);
const tiles = coopTiles(device.info);
const fma = peak('fma');
console.log(`f32 FMA rate (peak.comp)            ${fma.toFixed(1)} TFLOPS`);
const coopPeak = tiles !== null ? peak('coop') : null;
if (tiles !== null) {
  console.log(`f16 cooperative-matrix rate         ${coopPeak!.toFixed(1)} TFLOPS (shape ${tiles.tm}x${tiles.tn}x${tiles.tk})`);
  console.log(`cooperative kernel's tiles          ${tiles.bm} rows x ${tiles.bn} tokens, ${tiles.wm} x ${tiles.wn} per subgroup of ${tiles.sg}`);
} else console.log('no cooperative matrices on this device');

const shapes: [string, number, number][] = quick
  ? [['q/o', 512, 512]]
  : [
      ['q/o', 4096, 4096],
      ['k/v', 1024, 4096],
      ['gate/up', 14336, 4096],
      ['down', 4096, 14336],
    ];
const kinds: MatMulKind[] = (arg('kinds')?.split(',') as MatMulKind[] | undefined) ?? (tiles !== null ? ['coop', 'tiled'] : ['tiled']);
const onlyShapes = arg('shapes')?.split(',');
const onlyFormats = arg('formats')?.split(',');
const kernels = new Map(kinds.map((k) => [k, new MatMul(device, alloc, { kind: k })]));
console.log('\nshape     rows x cols    tokens  format  ' + kinds.map((k) => `${k.padStart(8)} ms  TFLOPS  of peak`).join('  '));
for (const tokens of tokenCounts) {
  for (const [label, rows, cols] of shapes) {
    if (onlyShapes !== undefined && !onlyShapes.includes(label)) continue;
    const x = alloc.alloc(tokens * cols * 4, 'x');
    fill(x, 'float32');
    const y = alloc.alloc(tokens * rows * 4, 'y');
    for (const format of ['q4', 'q8', 'bf16'] as WeightFormat[]) {
      if (onlyFormats !== undefined && !onlyFormats.includes(format)) continue;
      const w = alloc.alloc(rows * matrixRowBytes(format, cols), 'w');
      fill(w, format === 'bf16' ? 'half' : 'bytes');
      const pb = rows * paramsRowBytes(format, cols, 64);
      const params = pb > 0 ? alloc.alloc(pb, 'params') : null;
      if (params !== null) fill(params, format === 'q8' ? 'float32' : 'half');
      const m: GpuMatrix = singleMatrix(format, rows, cols, 64, w, params);
      const cells = kinds.map((kind) => {
        const s = timeBest(() => kernels.get(kind)!.record(cmds, m, x, y, tokens), quick ? 1 : 4, quick ? 1 : 5);
        const tflops = (2 * rows * cols * tokens) / s / 1e12;
        const of = kind === 'coop' ? coopPeak! : fma;
        return `${(s * 1e3).toFixed(3).padStart(11)}  ${tflops.toFixed(1).padStart(6)}  ${((100 * tflops) / of).toFixed(0).padStart(6)}%`;
      });
      console.log(`${label.padEnd(8)}  ${`${rows} x ${cols}`.padEnd(13)}  ${String(tokens).padStart(6)}  ${format.padEnd(6)}  ${cells.join('  ')}`);
      alloc.free(w);
      if (params !== null) alloc.free(params);
    }
    alloc.free(x);
    alloc.free(y);
  }
}
device.destroy();
