/**
 * npm run bench:kernels — GB/s of each matrix x vector kernel, as a ratio of a plain device-local
 * buffer copy measured in the same run on the same device. A benchmark, not a test: run it on a GPU.
 *
 * Each measurement records R dispatches in one command buffer, submits it, and takes the best of
 * several submits, two ways:
 * - chained: a barrier after each dispatch, so each waits for the one before (a decode step's view:
 *   the time includes the device's fixed cost of a dependent dispatch, printed first as "dispatch floor");
 * - streamed: no barrier, so the GPU may start a dispatch while the one before drains (the kernel's
 *   own reading rate, the figure a copy's rate compares with).
 * Every matrix is measured in rotation over copies of it that together exceed 256 MiB, so each
 * dispatch reads its weights from memory, not from the last-level cache (an H100 has 50 MB of L2:
 * without the rotation a 9 MiB INT4 matrix is read from cache after the first repetition).
 * Bytes counted: weights + scales read, x read, y written; for the copy, bytes read + written. The
 * baseline is a compute-shader copy (shaders/copy.comp) between device-local buffers;
 * vkCmdCopyBuffer is shown beside it.
 */
import { MatMul } from '../src/engine/kernels/matmul.js';
import { fillRandom } from './fill.js';
import { type GpuMatrix, MatVec, type QuantizedX, matrixBuffers, singleMatrix } from '../src/engine/kernels/matvec.js';
import { KERNELS } from '../src/engine/kernels/table.js';
import { type WeightFormat, WEIGHT_FORMAT_NAMES, matrixRowBytes, paramsRowBytes, takesInt8 } from '../src/engine/kernels/weight-formats.js';
import { Ops } from '../src/engine/kernels/ops.js';
import { Commands } from '../src/engine/vulkan/commands.js';
import { Device } from '../src/engine/vulkan/device.js';
import { Allocator, type GpuBuffer } from '../src/engine/vulkan/memory.js';
import { kernelFor } from '../src/engine/vulkan/pipeline.js';
import { copyBandwidth, timeBest as timeBestIn } from '../src/engine/vulkan/bandwidth.js';

const device = Device.open(process.argv.find((a) => a.startsWith('--gpu='))?.slice(6));
const alloc = new Allocator(device, { blockSize: 1 << 30 });
const cmds = new Commands(device);
const mv = new MatVec(device, alloc);
const quick = process.argv.includes('--quick');

const fill = (buf: GpuBuffer, kind: 'float32' | 'half' | 'bytes') => fillRandom(alloc, cmds, buf, kind);

const timeBest = (record: (rep: number) => void, reps: number, tries: number, chained = true) => timeBestIn(cmds, record, reps, tries, chained);

/** Bytes that the copies of a measured matrix add up to at least (past any GPU's last-level cache). */
const COLD_BYTES = quick ? 0 : 256 << 20;

/**
 * A matrix of pseudo-random weights (and scales), with copies so that all together hold at least
 * COLD_BYTES: measurements rotate over them. The first is filled from the host, the rest copied on the GPU.
 */
function matrices(format: WeightFormat, rows: number, cols: number, group = 64): GpuMatrix[] {
  const wBytes = rows * matrixRowBytes(format, cols);
  const pBytes = rows * paramsRowBytes(format, cols, group);
  const n = Math.max(1, Math.ceil(COLD_BYTES / (wBytes + pBytes)));
  const out: GpuMatrix[] = [];
  for (let i = 0; i < n; i++) {
    const w = alloc.alloc(wBytes, `${format} weights`);
    const params = pBytes > 0 ? alloc.alloc(pBytes, `${format} params`) : null;
    if (i === 0) {
      fill(w, format === 'f32' ? 'float32' : format === 'f16' || format === 'bf16' ? 'half' : 'bytes');
      if (params !== null) fill(params, format === 'q8' ? 'float32' : 'half');
    } else {
      cmds.begin();
      cmds.copy(out[0]!.parts[0]!.w, w, wBytes);
      if (params !== null) cmds.copy(out[0]!.parts[0]!.params!, params, pBytes);
      cmds.submitAndWait();
    }
    out.push(singleMatrix(format, rows, cols, group, w, params));
  }
  return out;
}

function freeAll(mats: GpuMatrix[]): void {
  for (const m of mats) for (const b of matrixBuffers(m)) alloc.free(b);
}

/** Bytes one matrix x vector moves: weights and scales read, x read, y written. */
const mvBytes = (m: GpuMatrix, xBytes = m.cols * 4) =>
  m.rows * (matrixRowBytes(m.format, m.cols) + paramsRowBytes(m.format, m.cols, m.group)) + xBytes + m.rows * 4;

/** Bytes of x as int8 activations: the values and a (scale, sum) per 32. */
const int8XBytes = (cols: number) => cols + (cols / 32) * 8;

/** x quantized once, outside any measurement, by kernel k's quantize_x. */
function quantized(k: MatVec, x: GpuBuffer, cols: number, format: WeightFormat): QuantizedX {
  cmds.begin();
  const xq = k.quantizeX(cmds, x, cols, format);
  cmds.submitAndWait();
  return xq;
}

/** Repetitions per measurement: about 20 GB of weights read, 10 to 200 dispatches. */
const repsFor = (m: GpuMatrix) => (quick ? 2 : Math.max(10, Math.min(200, Math.round(2e10 / (m.rows * matrixRowBytes(m.format, m.cols))))));

// Baseline: device-local to device-local copy by a compute shader, and by vkCmdCopyBuffer.
const baseline = copyBandwidth(device, alloc, quick ? 64 << 20 : 1 << 30, quick ? 2 : 10);
const copyGBs = baseline.shader;
const dmaGBs = baseline.dma;

console.log(`device: ${device.info.name} (${device.info.type}, ${device.info.driverName} ${device.info.driverInfo}), subgroup ${device.info.subgroupSize}`);
console.log(
  `baseline, copy by compute shader, device-local: ${copyGBs.toFixed(0)} GB/s (read + write, ${(baseline.bytes / 2 ** 20).toFixed(0)} MiB); vkCmdCopyBuffer: ${dmaGBs.toFixed(0)} GB/s`,
);
console.log(
  'matvec: tiling (R rows x T threads per tile) chosen per matrix; chained = a barrier after each dispatch, streamed = none; weights rotate over copies of >= 256 MiB in all\n',
);

const shapes: [number, number, string][] = quick
  ? [[512, 1024, 'quick']]
  : [
      [4096, 4096, 'square'],
      [14336, 4096, 'Llama 8B up'],
      [4096, 14336, 'Llama 8B down'],
      [21504, 5376, 'Gemma 27B up'],
      [5376, 21504, 'Gemma 27B down'],
    ];
const formats: readonly WeightFormat[] = WEIGHT_FORMAT_NAMES;
// INT8 and INT4 rows are measured twice where the device has integer dot products: on int8
// activations that arrive already quantized (what a decode step feeds every projection: the norm
// before q, k, v, gate and up, attention before o and the gated activation before down write both
// forms) and with x as floats (INT8 on float activations; INT4 with its quantize_x pre-pass).
const dotMv = new MatVec(device, alloc);
const rows: string[][] = [];
const tilings: [number, number][] = [
  [1, 32],
  [2, 32],
  [4, 32],
  [1, 64],
  [2, 64],
  [4, 64],
  [1, 128],
  [2, 128],
];
const sweep = new Map<string, MatVec>(tilings.map(([r, t]) => [`${r}x${t}`, new MatVec(device, alloc, { rows: r, threads: t })]));
const sweepRows: string[][] = [];
const label = (t: { rows: number; threads: number; unroll?: number }) => `${t.rows}x${t.threads}${(t.unroll ?? 1) > 1 ? `u${t.unroll}` : ''}`;

// The dispatch floor: an empty dispatch (one workgroup of the copy kernel, nothing to copy), chained
// and streamed. A chained matrix x vector cannot take less than the chained floor.
{
  const k = kernelFor(device, KERNELS.copy, {}, { workgroup: 256 });
  const a = alloc.alloc(16, 'empty');
  const set = k.bind({ src: a, dst: a });
  const empty = () => cmds.dispatch(k, set, k.push({ n: 0 }), [1, 1]);
  const chained = timeBest(empty, quick ? 2 : 500, quick ? 2 : 5);
  const streamed = timeBest(empty, quick ? 2 : 500, quick ? 2 : 5, false);
  console.log(`dispatch floor (an empty dispatch): chained ${(chained * 1e6).toFixed(2)} µs, streamed ${(streamed * 1e6).toFixed(2)} µs\n`);
  alloc.free(a);
}

for (const [r, c, what] of shapes) {
  const x = alloc.alloc(c * 4, 'x');
  const y = alloc.alloc(r * 4, 'y');
  fill(x, 'float32');
  for (const format of formats) {
    const mats = matrices(format, r, c);
    const m = mats[0]!;
    const reps = repsFor(m);
    const bytes = mvBytes(m);
    /** [µs, GB/s, share] chained, then [µs, share] streamed. */
    const measure = (k: MatVec, opts: { xq?: QuantizedX } = {}, b = bytes) => {
      const rec = (i: number) => k.record(cmds, mats[i % mats.length]!, x, y, opts);
      const tc = timeBest(rec, reps, quick ? 2 : 5);
      const ts = timeBest(rec, reps, quick ? 2 : 5, false);
      const share = (t: number) => `${((100 * b) / t / 1e9 / copyGBs).toFixed(0)}%`;
      return [(tc * 1e6).toFixed(1), (b / tc / 1e9).toFixed(0), share(tc), (ts * 1e6).toFixed(1), share(ts)];
    };
    if (takesInt8(format) && dotMv.integerDot) {
      const xq = quantized(dotMv, x, c, format);
      const qBytes = mvBytes(m, int8XBytes(c));
      rows.push([`${r}x${c}`, what, `${format} int8 x`, label(dotMv.tiling(m, true)), (qBytes / 2 ** 20).toFixed(1), ...measure(dotMv, { xq }, qBytes)]);
    }
    rows.push([
      `${r}x${c}`,
      what,
      format === 'q4' && mv.integerDot ? 'q4 +quant_x' : format === 'q8' ? 'q8 float x' : format,
      label(mv.tiling(m)),
      (bytes / 2 ** 20).toFixed(1),
      ...measure(mv),
    ]);
    if (what.startsWith('Gemma 27B') || quick) {
      sweepRows.push([`${r}x${c}`, format, ...[...sweep.values()].map((k) => measure(k)[2]!)]);
    }
    freeAll(mats);
  }
  alloc.free(x);
  alloc.free(y);
}
const header = ['shape', 'what', 'format', 'RxT', 'MiB', 'chained µs', 'GB/s', 'of copy', 'streamed µs', 'of copy'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
for (const line of [header, ...rows]) console.log(line.map((v, i) => (i < 3 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  '));
// Fused gate/up + activation against two matvecs and the activation kernel; batched prefill against
// the same tokens one matvec at a time. Gemma 3 27B's gate/up shape.
{
  const [r, c] = quick ? [512, 1024] : [21504, 5376];
  const tokens = quick ? 16 : 512;
  const ops = new Ops(device);
  const mm = new MatMul(device, alloc);
  const x = alloc.alloc(c * 4 * tokens, 'x');
  fill(x, 'float32');
  const y = alloc.alloc(r * 4 * tokens, 'y');
  const y2 = alloc.alloc(r * 4, 'y2');
  console.log(`\nfused and batched, ${r}x${c}:`);
  console.log('format  gate+up+act fused  separate  speed-up  |  prefill ' + tokens + ' tokens: matmul  matvec x' + tokens + '  speed-up');
  for (const format of ['bf16', 'q8', 'q4'] as const) {
    const mats = [0, 1].map(() => {
      const w = alloc.alloc(r * matrixRowBytes(format, c), 'w');
      fill(w, format === 'bf16' ? 'half' : 'bytes');
      const pb = r * paramsRowBytes(format, c, 64);
      let params: GpuBuffer | null = null;
      if (pb > 0) {
        params = alloc.alloc(pb, 'p');
        fill(params, format === 'q8' ? 'float32' : 'half');
      }
      return singleMatrix(format, r, c, 64, w, params);
    });
    const [g, u] = mats as [GpuMatrix, GpuMatrix];
    const fused = timeBest(() => mv.record(cmds, g, x, y, { up: u, act: 'gelu_tanh' }), quick ? 2 : 50, quick ? 2 : 5);
    const separate = timeBest(
      () => {
        mv.record(cmds, g, x, y);
        mv.record(cmds, u, x, y2);
        cmds.barrier();
        ops.gated(cmds, 'gelu_tanh', y, y2, y, r);
      },
      quick ? 2 : 50,
      quick ? 2 : 5,
    );
    const batched = timeBest(() => mm.record(cmds, g, x, y, tokens), quick ? 1 : 3, quick ? 1 : 3);
    const perToken = timeBest(() => mv.record(cmds, g, x, y), quick ? 2 : 20, quick ? 2 : 5) * tokens;
    console.log(
      `${format.padEnd(6)}  ${(fused * 1e6).toFixed(1).padStart(15)} µs  ${(separate * 1e6).toFixed(1).padStart(6)} µs  ${(separate / fused).toFixed(2).padStart(7)}x  |  ${(batched * 1e3).toFixed(2).padStart(20)} ms  ${(perToken * 1e3).toFixed(2).padStart(8)} ms  ${(perToken / batched).toFixed(2).padStart(7)}x`,
    );
    freeAll(mats);
  }
}

// INT8 and INT4 on both paths: int8 activations with integer dot products, and float activations.
if (mv.integerDot) {
  const floatPath = new MatVec(device, alloc, { integerDot: false });
  const dotPath = new MatVec(device, alloc, { q8Dot: true });
  console.log(
    '\nINT8 / INT4 paths (share of the copy rate): integer dot (int8 activations; with the quantize_x pre-pass, and with x already quantized) vs float activations',
  );
  const dotShapes: [number, number][] = quick
    ? [[512, 1024]]
    : [
        [21504, 5376],
        [5376, 21504],
      ];
  for (const format of ['q8', 'q4'] as const) {
    for (const [r, c] of dotShapes) {
      const x = alloc.alloc(c * 4, 'x');
      const y = alloc.alloc(r * 4, 'y');
      fill(x, 'float32');
      const mats = matrices(format, r, c);
      const bytes = mvBytes(mats[0]!);
      const share = (k: MatVec, opts: { xq?: QuantizedX } = {}) => {
        const t = timeBest((i) => k.record(cmds, mats[i % mats.length]!, x, y, opts), quick ? 2 : 100, quick ? 2 : 5);
        return `${((100 * bytes) / t / 1e9 / copyGBs).toFixed(0)}%`;
      };
      const xq = quantized(dotPath, x, c, format);
      console.log(`  ${format} ${r}x${c}: integer dot ${share(dotPath)}, x already quantized ${share(dotPath, { xq })}, float ${share(floatPath)}`);
      freeAll(mats);
      alloc.free(x);
      alloc.free(y);
    }
  }
}

// --probe: INT4 and INT8 on int8 x at a few tilings, measured as the main table measures (a fresh
// matrix per shape, the tilings one after another).
if (process.argv.includes('--probe')) {
  console.log('\nprobe: int8 x, share of the copy rate per tiling (RxT, u = blocks per thread per iteration), chained/streamed');
  const tl: { rows: number; threads: number; unroll: number }[] = [
    { rows: 1, threads: 64, unroll: 1 },
    { rows: 1, threads: 64, unroll: 2 },
    { rows: 1, threads: 128, unroll: 1 },
    { rows: 1, threads: 128, unroll: 2 },
    { rows: 1, threads: 32, unroll: 4 },
    { rows: 2, threads: 64, unroll: 2 },
    { rows: 2, threads: 128, unroll: 1 },
    { rows: 1, threads: 256, unroll: 1 },
  ];
  for (const [r, c] of quick
    ? [[512, 1024]]
    : [
        [4096, 4096],
        [14336, 4096],
        [4096, 14336],
        [21504, 5376],
        [5376, 21504],
      ]) {
    const x = alloc.alloc(c! * 4, 'x');
    const y = alloc.alloc(r! * 4, 'y');
    fill(x, 'float32');
    for (const format of ['q4', 'q8'] as const) {
      const mats = matrices(format, r!, c!);
      const m = mats[0]!;
      const bytes = mvBytes(m, int8XBytes(c!));
      const xq = quantized(dotMv, x, c!, format);
      const cells = tl.map((t) => {
        if (t.threads > device.info.maxComputeWorkGroupInvocations) return '-';
        const k = new MatVec(device, alloc, t);
        const rec = (i: number) => k.record(cmds, mats[i % mats.length]!, x, y, { xq });
        const share = (time: number) => `${((100 * bytes) / time / 1e9 / copyGBs).toFixed(0)}%`;
        return `${t.rows}x${t.threads}u${t.unroll} ${share(timeBest(rec, repsFor(m), quick ? 2 : 5))}/${share(timeBest(rec, repsFor(m), quick ? 2 : 5, false))}`;
      });
      console.log(`  ${`${r}x${c}`.padEnd(11)} ${format}  ${cells.join('  ')}`);
      freeAll(mats);
    }
    alloc.free(x);
    alloc.free(y);
  }
}

// --unroll: every tiling x unroll for the quantized paths (x already quantized on the integer-dot
// path: the kernel as decode runs it when the producer of x quantizes it), best first per shape.
if (process.argv.includes('--unroll')) {
  console.log('\ntiling x unroll sweep (share of the copy rate; R rows x T threads per tile, U blocks per thread per iteration):');
  const configs: { rows: number; threads: number; unroll: number }[] = [];
  for (const [rows, threads] of tilings) {
    for (const unroll of [1, 2, 4]) configs.push({ rows, threads, unroll });
  }
  const kinds: { label: string; format: WeightFormat; dot: boolean }[] = [
    { label: 'bf16', format: 'bf16', dot: false },
    { label: 'q8 float', format: 'q8', dot: false },
    { label: 'q8 dot', format: 'q8', dot: true },
    { label: 'q4 dot', format: 'q4', dot: true },
  ];
  const shapesU: [number, number][] = quick
    ? [[512, 1024]]
    : [
        [4096, 4096],
        [14336, 4096],
        [4096, 14336],
        [21504, 5376],
        [5376, 21504],
      ];
  for (const [r, c] of shapesU) {
    const x = alloc.alloc(c * 4, 'x');
    const y = alloc.alloc(r * 4, 'y');
    fill(x, 'float32');
    for (const kind of kinds) {
      if (kind.dot && !mv.integerDot) continue;
      const mats = matrices(kind.format, r, c);
      const m = mats[0]!;
      const bytes = mvBytes(m, kind.dot ? int8XBytes(c) : c * 4);
      const reps = repsFor(m);
      const results: [string, number][] = [];
      let xq: QuantizedX | undefined;
      for (const cfg of configs) {
        const k = new MatVec(device, alloc, { ...cfg, integerDot: kind.dot, q8Dot: kind.dot });
        if (kind.dot && xq === undefined) xq = quantized(k, x, c, kind.format);
        const t = timeBest((i) => k.record(cmds, mats[i % mats.length]!, x, y, kind.dot ? { xq: xq! } : {}), reps, quick ? 2 : 5);
        results.push([`${cfg.rows}x${cfg.threads}u${cfg.unroll}`, (100 * bytes) / t / 1e9 / copyGBs]);
      }
      results.sort((a, b) => b[1] - a[1]);
      const u1 = results.find(([n]) => n === `${mv.tiling(m).rows}x${mv.tiling(m).threads}u1`);
      console.log(
        `  ${`${r}x${c}`.padEnd(11)} ${kind.label.padEnd(8)} default ${u1 === undefined ? '-' : `${u1[1].toFixed(0)}%`}; best ${results
          .slice(0, 5)
          .map(([n, v]) => `${n} ${v.toFixed(0)}%`)
          .join(', ')}; worst ${results.at(-1)![0]} ${results.at(-1)![1].toFixed(0)}%`,
      );
      freeAll(mats);
    }
    alloc.free(x);
    alloc.free(y);
  }
  // The pre-pass alone (a dispatch between barriers), for the INT4 sizes above.
  for (const c of quick ? [1024] : [4096, 5376, 14336, 21504]) {
    const x = alloc.alloc(c * 4, 'x');
    fill(x, 'float32');
    const t = timeBest(
      () => {
        mv.quantizeX(cmds, x, c, 'q4');
      },
      quick ? 2 : 200,
      quick ? 2 : 5,
    );
    console.log(`  quantize_x pre-pass, ${c} values: ${(t * 1e6).toFixed(2)} µs`);
    alloc.free(x);
  }
}

console.log('\ntilings, rows x threads per tile (share of the copy rate):');
const sh = ['shape', 'format', ...sweep.keys()];
for (const line of [sh, ...sweepRows]) console.log(line.map((v, i) => (i < 2 ? v.padEnd(11) : v.padStart(6))).join('  '));
device.destroy();
