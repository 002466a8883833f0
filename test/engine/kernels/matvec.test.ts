import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ArrayToBf16, f32ArrayToF16 } from '../../../src/engine/formats/dtypes.js';
import { MatMul, type MatMulKind, coopProblem, coopTiles, matmulKind } from '../../../src/engine/kernels/matmul.js';
import { CPU_TILING, MatVec, defaultTiling, matrixBuffers, quantizedView, singleMatrix } from '../../../src/engine/kernels/matvec.js';
import type { WeightFormat } from '../../../src/engine/kernels/weight-formats.js';
import { gatedRef } from '../../../src/engine/kernels/reference.js';
import { dequantizeQ4, dequantizeQ8, matvecRef, quantizeActivations, quantizeQ4, quantizeQ8 } from '../../../src/engine/quant/quantize.js';
import { f16ToF32 as halfToF32 } from '../../../src/engine/formats/dtypes.js';
import { download, upload as uploadTo, uploadNew } from '../../../src/engine/vulkan/transfer.js';
import { openGpu, randomFloats } from '../../support/gpu.js';
import { assertQuantizedAs } from '../../support/activations.js';
import { Commands } from '../../../src/engine/vulkan/commands.js';

const gpu = openGpu();
after(() => gpu.device.destroy());
const mv = new MatVec(gpu.device, gpu.alloc);
const mm = new MatMul(gpu.device, gpu.alloc);

/** The weights as the GPU stores them, and as f32 values the reference multiplies. */
function prepare(format: WeightFormat, w: Float32Array, rows: number, cols: number, group = 64) {
  const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (format) {
    case 'f32':
      return { bytes: u8(w), params: null, exact: w };
    case 'f16': {
      const h = f32ArrayToF16(w);
      return { bytes: u8(h), params: null, exact: Float32Array.from(h, f16ToF32) };
    }
    case 'bf16': {
      const h = f32ArrayToBf16(w);
      return { bytes: u8(h), params: null, exact: Float32Array.from(h, bf16ToF32) };
    }
    case 'q8': {
      const q = quantizeQ8(w, rows, cols);
      return { bytes: u8(q.q), params: u8(q.scales), exact: dequantizeQ8(q, rows, cols) };
    }
    case 'q4': {
      const q = quantizeQ4(w, rows, cols, group);
      // Each weight's group minimum m (w = q d + m): the integer-dot path applies m to the exact x.
      const mins = Float32Array.from({ length: rows * cols }, (_, i) =>
        halfToF32(q.params[Math.floor(i / cols) * (cols / group) + Math.floor((i % cols) / group)]! >>> 16),
      );
      return { bytes: q.packed, params: u8(q.params), exact: dequantizeQ4(q, rows, cols), mins };
    }
  }
}

const maxAbs = (v: Float32Array) => v.reduce((m, a) => Math.max(m, Math.abs(a)), 0);

/**
 * What the kernel computes: W x, or on the integer-dot paths W x^ (INT8) and sum (q d) x^ + m x
 * (INT4) with x^ the int8 activations; `flips` bounds two activations rounding one step differently
 * on the GPU (its reciprocal is not IEEE-exact).
 */
function reference(p: ReturnType<typeof prepare>, x: Float32Array, rows: number, cols: number, integerDot: boolean): { want: Float32Array; flips: number } {
  if (!integerDot) return { want: matvecRef(p.exact, x, rows, cols), flips: 0 };
  const { values: xh, maxScale } = quantizeActivations(x);
  if (!('mins' in p) || p.mins === undefined) return { want: matvecRef(p.exact, xh, rows, cols), flips: 2 * maxAbs(p.exact) * maxScale };
  const qd = p.exact.map((v, i) => v - p.mins[i]!);
  const viaMins = matvecRef(p.mins, x, rows, cols);
  return { want: matvecRef(qd, xh, rows, cols).map((v, r) => v + viaMins[r]!), flips: 2 * maxAbs(qd) * maxScale };
}

function run(format: WeightFormat, rows: number, cols: number, opts: { group?: number; maxRange?: number; seed?: number; kernel?: MatVec } = {}) {
  const seed = opts.seed ?? rows * 31 + cols;
  const w = randomFloats(rows * cols, seed);
  const x = randomFloats(cols, seed + 1);
  const p = prepare(format, w, rows, cols, opts.group);
  const m = singleMatrix(
    format,
    rows,
    cols,
    opts.group ?? 64,
    uploadNew(gpu.alloc, gpu.cmds, p.bytes, `${format} weights`),
    p.params === null ? null : uploadNew(gpu.alloc, gpu.cmds, p.params, `${format} params`),
  );
  const xb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(x.buffer), 'x');
  const yb = gpu.alloc.alloc(rows * 4, 'y');
  gpu.cmds.begin();
  (opts.kernel ?? mv).record(gpu.cmds, m, xb, yb, opts.maxRange === undefined ? {} : { maxRange: opts.maxRange });
  gpu.cmds.submitAndWait();
  const got = new Float32Array(rows);
  download(gpu.alloc, gpu.cmds, yb, new Uint8Array(got.buffer));
  for (const b of [...matrixBuffers(m), xb, yb]) gpu.alloc.free(b);
  // Tolerance: f32 accumulation over `cols` products, in a different order than the reference:
  // a few ulps of sum |w x|.
  const { want, flips } = reference(p, x, rows, cols, (opts.kernel ?? mv).dotPath(format));
  const absSum = matvecRef(p.exact.map(Math.abs), x.map(Math.abs), rows, cols);
  for (let r = 0; r < rows; r++) {
    const tol = 4 * Math.sqrt(cols) * 2 ** -23 * absSum[r]! + flips + 1e-30;
    assert.ok(Math.abs(got[r]! - want[r]!) <= tol, `${format} ${rows}x${cols} row ${r}: got ${got[r]}, want ${want[r]} (tol ${tol})`);
  }
  return { w, x, got };
}

describe(`matrix x vector on ${gpu.device.info.name}`, () => {
  for (const format of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const) {
    test(`${format}: matches the CPU reference on the weights as stored`, () => {
      run(format, 67, 256);
      run(format, 5, 1024);
    });
  }
  for (const group of [32, 64, 128]) {
    test(`q4 group ${group}`, () => {
      run('q4', 40, 384, { group });
    });
  }
  test(`q8 and q4 on both paths: int8 activations with integer dot products (${mv.integerDot ? 'on this device' : 'not on this device'}) and float`, () => {
    const float = new MatVec(gpu.device, gpu.alloc, { integerDot: false });
    const dot = new MatVec(gpu.device, gpu.alloc, { q8Dot: true });
    assert.equal(float.integerDot, false);
    for (const format of ['q8', 'q4'] as const) {
      run(format, 67, 512, { kernel: float });
      run(format, 67, 512, { kernel: dot });
    }
    for (const group of [32, 128]) run('q4', 19, 256, { kernel: float, group });
  });
  test('every tiling (1-4 rows, 32-128 threads per tile) gives the same results, partial tiles included', () => {
    for (const rows of [1, 2, 3, 4]) {
      for (const threads of [32, 64, 128]) {
        const kernel = new MatVec(gpu.device, gpu.alloc, { rows, threads });
        for (const format of ['bf16', 'q8', 'q4'] as const) run(format, 37, 512, { kernel });
      }
    }
  });
  test('unrolled loops (2 and 3 blocks per thread per iteration, with the remainder) give the same results', () => {
    for (const unroll of [2, 3]) {
      for (const rows of [1, 2]) {
        const kernel = new MatVec(gpu.device, gpu.alloc, { rows, threads: 32, unroll });
        for (const format of ['bf16', 'q8', 'q4'] as const) run(format, 37, 4096, { kernel });
        if (kernel.integerDot) {
          const dot = new MatVec(gpu.device, gpu.alloc, { rows, threads: 32, unroll, q8Dot: true });
          for (const format of ['q8', 'q4'] as const) run(format, 37, 4096, { kernel: dot });
        }
      }
    }
  });
  test("tiling: the format's default on a GPU (one row per tile when rows are few), fewer longer invocations on a CPU driver", () => {
    if (gpu.device.info.type === 'cpu') {
      assert.deepEqual(mv.tiling({ format: 'q8', rows: 100, cols: 5376 }), { ...CPU_TILING, threads: Math.max(32, mv.minThreads) });
    } else {
      assert.deepEqual(mv.tiling({ format: 'q8', rows: 21504, cols: 5376 }), { rows: 2, threads: Math.max(64, mv.minThreads), unroll: 1 });
      assert.deepEqual(mv.tiling({ format: 'q4', rows: 100, cols: 5376 }), { rows: 1, threads: Math.max(64, mv.minThreads), unroll: 1 });
    }
    // The GPU defaults (bench:kernels on the H100), whatever this device is.
    assert.deepEqual(defaultTiling('q8', 5376, false), { rows: 2, threads: 64 });
    assert.deepEqual(defaultTiling('q8', 5376, true), { rows: 1, threads: 128, unroll: 2 });
    assert.deepEqual(defaultTiling('q8', 4096, true), { rows: 1, threads: 64, unroll: 2 });
    assert.deepEqual(defaultTiling('q4', 4096, true), { rows: 1, threads: 32, unroll: 4 });
    assert.deepEqual(defaultTiling('q4', 5376, true), { rows: 1, threads: 64 });
    assert.deepEqual(defaultTiling('q4', 21504, true), { rows: 1, threads: 128, unroll: 2 });
    assert.deepEqual(defaultTiling('bf16', 4096, false), { rows: 1, threads: 64 });
  });
  test('accumulate: y += W x (a residual add fused in), over split row ranges too', () => {
    const [rows, cols] = [150, 256];
    const w = randomFloats(rows * cols, 61);
    const x = randomFloats(cols, 62);
    const y0 = randomFloats(rows, 63);
    const p = prepare('bf16', w, rows, cols);
    const m = singleMatrix('bf16', rows, cols, 0, uploadNew(gpu.alloc, gpu.cmds, p.bytes, 'w'), null);
    const xb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(x.buffer), 'x');
    const yb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(y0.slice().buffer), 'y');
    gpu.cmds.begin();
    mv.record(gpu.cmds, m, xb, yb, { accumulate: true, maxRange: 64 * cols * 2 });
    gpu.cmds.submitAndWait();
    const got = new Float32Array(rows);
    download(gpu.alloc, gpu.cmds, yb, new Uint8Array(got.buffer));
    const want = matvecRef(p.exact, x, rows, cols).map((v, i) => v + y0[i]!);
    for (let r = 0; r < rows; r++) assert.ok(Math.abs(got[r]! - want[r]!) <= 1e-4 * (1 + Math.abs(want[r]!)), `row ${r}: ${got[r]} vs ${want[r]}`);
  });
  test('weights larger than the storage-buffer range are split into row ranges', () => {
    // 300 rows of 1 KiB with a 64 KiB range: 5 ranges (64 rows each, the last one 44).
    run('f32', 300, 256, { maxRange: 64 * 1024 });
    run('q4', 300, 256, { maxRange: 64 * 128, group: 32 });
  });
  test('quantized results stay close to the unquantized product', () => {
    const rows = 64;
    const cols = 512;
    const w = randomFloats(rows * cols, 7);
    const x = randomFloats(cols, 8);
    const exact = matvecRef(w, x, rows, cols);
    const norm = Math.sqrt(exact.reduce((a, v) => a + v * v, 0));
    for (const [format, bound] of [
      ['q8', 0.01],
      ['q4', 0.12],
    ] as const) {
      const y = run(format, rows, cols, { seed: 7 }).got;
      const err = Math.sqrt(y.reduce((a, v, i) => a + (v - exact[i]!) ** 2, 0)) / norm;
      assert.ok(err < bound, `${format}: relative error ${err.toFixed(4)} over ${bound}`);
    }
  });
});

describe(`fused matrix x vector on ${gpu.device.info.name}`, () => {
  function upload(format: WeightFormat, w: Float32Array, rows: number, cols: number) {
    const p = prepare(format, w, rows, cols);
    const m = singleMatrix(
      format,
      rows,
      cols,
      64,
      uploadNew(gpu.alloc, gpu.cmds, p.bytes, 'w'),
      p.params === null ? null : uploadNew(gpu.alloc, gpu.cmds, p.params, 'params'),
    );
    return { m, exact: p.exact, p };
  }
  for (const format of ['bf16', 'q8', 'q4'] as const) {
    for (const act of ['gelu_tanh', 'silu'] as const) {
      test(`${format}: gate and up projections with ${act} in one dispatch`, () => {
        const rows = 77;
        const cols = 256;
        const gate = upload(format, randomFloats(rows * cols, 31), rows, cols);
        const up = upload(format, randomFloats(rows * cols, 32), rows, cols);
        const x = randomFloats(cols, 33);
        const y = gpu.alloc.alloc(rows * 4, 'y');
        const xb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(x.buffer), 'x');
        gpu.cmds.begin();
        mv.record(gpu.cmds, gate.m, xb, y, { up: up.m, act, maxRange: 64 * 512 });
        gpu.cmds.submitAndWait();
        const got = new Float32Array(rows);
        download(gpu.alloc, gpu.cmds, y, new Uint8Array(got.buffer));
        const dot = mv.dotPath(format);
        const g = reference(gate.p, x, rows, cols, dot);
        const u = reference(up.p, x, rows, cols, dot);
        const want = gatedRef(act, g.want, u.want);
        const a = gatedRef(act, g.want, new Float32Array(rows).fill(1));
        for (let r = 0; r < rows; r++) {
          // GELU-tanh and SiLU have slopes below 1.2: an error e_g in the gate moves the result by at most 1.2 e_g |u|.
          const tol = 1e-4 * (1 + Math.abs(want[r]!)) + 1.2 * g.flips * (Math.abs(u.want[r]!) + u.flips) + Math.abs(a[r]!) * u.flips;
          assert.ok(Math.abs(got[r]! - want[r]!) <= tol, `${format} ${act} row ${r}: ${got[r]} vs ${want[r]} (tolerance ${tol})`);
        }
      });
    }
  }
  test('int8 output (for the next projection): what quantize_x makes of y, for every tiling, over split row ranges, step after step (the block counters reset)', () => {
    const [rows, cols] = [192, 256];
    const gate = upload('q8', randomFloats(rows * cols, 51), rows, cols);
    const up = upload('q8', randomFloats(rows * cols, 52), rows, cols);
    const xb = gpu.alloc.alloc(cols * 4, 'x');
    const y = gpu.alloc.alloc(rows * 4, 'y');
    const step = new Commands(gpu.device);
    for (const [r, threads] of [
      [1, 32],
      [2, 32],
      [3, 32],
      [4, 64],
      [1, 128],
      [2, 128],
    ] as const) {
      const kernel = new MatVec(gpu.device, gpu.alloc, { rows: r, threads });
      const quantOut = kernel.scratch(rows);
      for (const fused of [false, true]) {
        // One recording (rows split into ranges of 64), submitted for three different inputs.
        step.begin({ reusable: true });
        kernel.record(step, gate.m, xb, y, { maxRange: 64 * cols, quantOut, ...(fused ? { up: up.m, act: 'silu' as const } : {}) });
        step.end();
        for (const seed of [1, 2, 3]) {
          const x = randomFloats(cols, 100 * r + seed);
          uploadTo(gpu.alloc, gpu.cmds, xb, new Uint8Array(x.buffer));
          step.submitAndWait();
          assertQuantizedAs(gpu, kernel, quantOut, y, rows, `${r}x${threads}${fused ? ' gate/up' : ''}, input ${seed}`);
        }
      }
    }
    assert.throws(() => mv.record(gpu.cmds, upload('q8', randomFloats(40 * cols, 53), 40, cols).m, xb, y, { quantOut: mv.scratch(64) }), /multiple of 32/);
    // A square matrix (an MLP as wide as the hidden size) whose int8 output would land in the int8
    // input it reads: refused; the output has a scratch of its own.
    const square = upload('q8', randomFloats(cols * cols, 54), cols, cols);
    const xq = quantizedView(mv.scratch(cols), 'q8');
    assert.throws(() => mv.record(gpu.cmds, square.m, xb, y, { xq, quantOut: mv.scratch(cols) }), /would overwrite the int8 input it reads/);
    assert.notEqual(mv.scratch(cols, 'out').q8, mv.scratch(cols).q8);
  });
  test('q, k and v stacked in one matrix with biases: one dispatch equals three', () => {
    const cols = 128;
    const [q, k, v] = [64, 32, 32];
    const rows = q + k + v;
    const w = randomFloats(rows * cols, 41);
    const bias = randomFloats(rows, 42);
    const x = randomFloats(cols, 43);
    const mat = upload('bf16', w, rows, cols);
    const y = gpu.alloc.alloc(rows * 4, 'qkv');
    const xb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(x.buffer), 'x');
    const bb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(bias.buffer), 'bias');
    gpu.cmds.begin();
    mv.record(gpu.cmds, mat.m, xb, y, { bias: bb, maxRange: 64 * 256 });
    gpu.cmds.submitAndWait();
    const got = new Float32Array(rows);
    download(gpu.alloc, gpu.cmds, y, new Uint8Array(got.buffer));
    const want = matvecRef(mat.exact, x, rows, cols).map((val, i) => val + bias[i]!);
    for (let r = 0; r < rows; r++) assert.ok(Math.abs(got[r]! - want[r]!) <= 1e-5 * (1 + Math.abs(want[r]!)), `row ${r}: ${got[r]} vs ${want[r]}`);
  });
});

describe(`matrix x matrix (prefill) on ${gpu.device.info.name}`, () => {
  /** Y[t] = W x_t for every token, checked row by row against the CPU reference. */
  function runMM(format: WeightFormat, rows: number, cols: number, tokens: number, opts: { group?: number; maxRange?: number; kernel?: MatMul } = {}) {
    const w = randomFloats(rows * cols, rows + cols);
    const x = randomFloats(tokens * cols, tokens);
    const p = prepare(format, w, rows, cols, opts.group);
    const m = singleMatrix(
      format,
      rows,
      cols,
      opts.group ?? 64,
      uploadNew(gpu.alloc, gpu.cmds, p.bytes, 'w'),
      p.params === null ? null : uploadNew(gpu.alloc, gpu.cmds, p.params, 'params'),
    );
    const yb = gpu.alloc.alloc(tokens * rows * 4, 'y');
    const xb = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(x.buffer), 'x');
    const f16 = (opts.kernel ?? mm).kindFor(m) === 'coop';
    gpu.cmds.begin();
    (opts.kernel ?? mm).record(gpu.cmds, m, xb, yb, tokens, opts.maxRange === undefined ? {} : { maxRange: opts.maxRange });
    gpu.cmds.submitAndWait();
    const got = new Float32Array(tokens * rows);
    download(gpu.alloc, gpu.cmds, yb, new Uint8Array(got.buffer));
    for (let t = 0; t < tokens; t++) {
      const xt = x.subarray(t * cols, (t + 1) * cols);
      const want = matvecRef(p.exact, xt, rows, cols);
      const absSum = matvecRef(p.exact.map(Math.abs), xt.map(Math.abs), rows, cols);
      for (let r = 0; r < rows; r++) {
        // f32 sums; the cooperative kernel rounds W and x to f16 first (2^-11 each, and f16's subnormal step).
        const tol = 4 * Math.sqrt(cols) * 2 ** -23 * absSum[r]! + (f16 ? 2 ** -10 * absSum[r]! + cols * 2 ** -24 : 0) + 1e-30;
        assert.ok(Math.abs(got[t * rows + r]! - want[r]!) <= tol, `${format} token ${t} row ${r}: got ${got[t * rows + r]}, want ${want[r]}`);
      }
    }
  }
  // Every kernel the device can run: tiled through shared memory (GPUs), direct (CPU drivers) and,
  // where the device has cooperative matrices, the cooperative one (f16 products: a looser tolerance).
  const coop = coopTiles(gpu.device.info);
  const kinds: MatMulKind[] = ['tiled', 'direct', ...(coop !== null ? (['coop'] as const) : [])];
  const variants = kinds.map((kind) => new MatMul(gpu.device, gpu.alloc, { kind }));
  for (const format of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const) {
    test(`${format}: partial tiles in every dimension (${kinds.join(', ')})`, () => {
      for (const kernel of variants) runMM(format, 70, format === 'q4' ? 128 : 96, 37, { kernel });
    });
  }
  test(`q4 groups of 32 and 128; row ranges past the storage-buffer range (${kinds.join(', ')})`, () => {
    for (const kernel of variants) {
      runMM('q4', 64, 256, 5, { group: 32, kernel });
      runMM('q4', 64, 256, 5, { group: 128, kernel });
      runMM('bf16', 200, 128, 9, { maxRange: 64 * 256, kernel });
    }
  });
  test(
    'the cooperative kernel at model shapes: whole and partial tiles, long rows, one token, a row not a multiple of 8',
    { skip: coop === null && `${gpu.device.info.name} has no cooperative matrices` },
    () => {
      const kernel = new MatMul(gpu.device, gpu.alloc, { kind: 'coop' });
      const t = coop!;
      runMM('q4', 2 * t.bm, 512, 2 * t.bn, { kernel }); // whole tiles only
      runMM('q8', t.bm + 3, 1024, t.bn + 1, { kernel });
      runMM('bf16', 96, 96, 1, { kernel });
      runMM('f16', 3 * t.bm - 1, 160, 3, { kernel });
      runMM('f32', 40, 36, 5, { kernel }); // cols % 8 != 0: the tiled kernel
      assert.equal(kernel.kindFor({ cols: 36 } as never), 'tiled');
    },
  );
  test('the direct kernel is the default on CPU drivers, the cooperative one on GPUs that have it', () => {
    assert.equal(matmulKind(gpu.device.info, ''), gpu.device.info.type === 'cpu' ? 'direct' : coop !== null ? 'coop' : 'tiled');
    assert.equal(mm.kind, matmulKind(gpu.device.info));
  });
  test(
    'the cooperative kernel is checked once per device, and a layout it was not made for is caught',
    { skip: coop === null && `${gpu.device.info.name} has no cooperative matrices` },
    () => {
      assert.equal(coopProblem(gpu.device, gpu.alloc), undefined);
      assert.equal(new MatMul(gpu.device, gpu.alloc, { kind: 'coop' }).fallback, undefined);
      // Tiles made for twice the subgroup size the pipeline runs at: the kernel writes nothing, the check says so.
      assert.match(coopProblem(gpu.device, gpu.alloc, { ...coop!, sg: 2 * coop!.sg }) ?? '', /NaN instead of/);
    },
  );
  test('UNICORN_MATMUL and UNICORN_MATMUL_TILE are checked', () => {
    assert.throws(() => matmulKind(gpu.device.info, 'fast'), /not coop, tiled or direct/);
    if (coop === null) assert.throws(() => matmulKind(gpu.device.info, 'coop'), /no usable cooperative matrices/);
    const info = {
      ...gpu.device.info,
      cooperativeMatrix: true,
      coopMatShapes: [{ m: 16, n: 16, k: 16, a: 'f16', b: 'f16', c: 'f32', result: 'f32' }],
    } as const;
    assert.deepEqual(coopTiles(info, '128,64,32,32'), { tm: 16, tn: 16, tk: 16, bm: 128, bn: 64, wm: 32, wn: 32, sg: info.subgroupSize });
    assert.deepEqual(coopTiles({ ...info, maxComputeSharedMemorySize: 49152, maxComputeWorkGroupInvocations: 1024 }), {
      tm: 16,
      tn: 16,
      tk: 16,
      bm: 128,
      bn: 128,
      wm: 64,
      wn: 16,
      sg: info.subgroupSize,
    });
    assert.throws(() => coopTiles(info, '128,64'), /four positive integers/);
    assert.throws(() => coopTiles(info, '128,64,24,32'), /not a whole number of 16 x 16/);
    assert.throws(() => coopTiles({ ...info, maxComputeWorkGroupInvocations: 64 }, '128,128,16,16'), /invocations exceed/);
  });
});
