import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ArrayToBf16, f32ArrayToF16, bf16ToF32, f16ToF32 } from '../../../src/engine/formats/dtypes.js';
import { Ops } from '../../../src/engine/kernels/ops.js';
import { argmaxRef, attentionRef, gatedRef, rmsnormRef, ropeRef, roundF16 } from '../../../src/engine/kernels/reference.js';
import { inverseFrequencies, ropeTable } from '../../../src/engine/kernels/rope-table.js';
import { quantizeQ8 } from '../../../src/engine/quant/quantize.js';
import type { GpuBuffer } from '../../../src/engine/vulkan/memory.js';
import { download, uploadNew } from '../../../src/engine/vulkan/transfer.js';
import { openGpu, randomFloats } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());
const ops = new Ops(gpu.device);

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const put = (a: ArrayBufferView, label = 'input') => uploadNew(gpu.alloc, gpu.cmds, bytes(a), label);
const getF32 = (b: GpuBuffer, n: number) => { const out = new Float32Array(n); download(gpu.alloc, gpu.cmds, b, bytes(out)); return out; };
const getU32 = (b: GpuBuffer, n: number) => { const out = new Uint32Array(n); download(gpu.alloc, gpu.cmds, b, bytes(out)); return out; };
const run = (record: () => void) => { gpu.cmds.begin(); record(); gpu.cmds.submitAndWait(); };

function close(got: Float32Array, want: Float32Array, rel: number, abs: number, what: string): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = rel * Math.abs(want[i]!) + abs;
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${tol})`);
  }
}

describe(`kernels on ${gpu.device.info.name}`, () => {
  test('rmsnorm, plain and Gemma (1 + w), in place, over rows and per head', () => {
    for (const [rows, n, offset] of [[3, 1000, 0], [5, 64, 1], [12, 256, 1]] as const) {
      const x = randomFloats(rows * n, n).map((v) => v * 3);
      const w = randomFloats(n, n + 1);
      const xb = put(x);
      run(() => ops.rmsnorm(gpu.cmds, xb, put(w), xb, rows, n, 1e-6, offset));
      // f32 sum of squares over n values against f64: a few ulps times sqrt(n).
      close(getF32(xb, rows * n), rmsnormRef(x, w, rows, n, 1e-6, offset), 1e-5, 1e-6, `rmsnorm ${rows}x${n}`);
    }
  });

  test('rope: rotate-half with a host table, default, linear and llama3 frequencies', () => {
    const tokens = 5;
    const heads = 3;
    const d = 32;
    const positions = [0, 1, 7, 300, 100_000];
    for (const rope of [
      { theta: 10_000, scaling: { kind: 'none' } as const },
      { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } as const },
      { theta: 500_000, scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } as const },
    ]) {
      const table = ropeTable(inverseFrequencies(rope, d), positions);
      const x = randomFloats(tokens * heads * d, 3);
      const xb = put(x);
      run(() => ops.rope(gpu.cmds, xb, put(table), tokens, heads, d));
      close(getF32(xb, x.length), ropeRef(x, table, tokens, heads, d), 1e-6, 1e-6, `rope ${rope.scaling.kind}`);
    }
  });

  test('rope frequencies: linear divides by the factor; llama3 keeps high, divides low, blends the middle', () => {
    const base = inverseFrequencies({ theta: 500_000, scaling: { kind: 'none' } }, 16);
    const lin = inverseFrequencies({ theta: 500_000, scaling: { kind: 'linear', factor: 8 } }, 16);
    assert.ok(lin.every((v, i) => v === Math.fround(base[i]! / 8)));
    const l3 = inverseFrequencies({ theta: 500_000, scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } }, 16);
    const wavelen = (i: number) => (2 * Math.PI) / base[i]!;
    let kinds = 0;
    for (let i = 0; i < 8; i++) {
      if (wavelen(i) < 16) { assert.equal(l3[i], base[i]); kinds |= 1; }
      else if (wavelen(i) > 64) { assert.equal(l3[i], Math.fround(base[i]! / 8)); kinds |= 2; }
      else { assert.ok(l3[i]! < base[i]! && l3[i]! > base[i]! / 8); kinds |= 4; }
    }
    assert.equal(kinds, 7, 'all three bands occur');
  });

  test('gated activations: GELU-tanh and SiLU, large arguments included', () => {
    const n = 5000;
    const g = randomFloats(n, 11).map((v, i) => (i < 10 ? (i - 5) * 40 : v * 6));
    const u = randomFloats(n, 12);
    for (const act of ['gelu_tanh', 'silu'] as const) {
      const out = gpu.alloc.alloc(n * 4, 'out');
      run(() => ops.gated(gpu.cmds, act, put(g), put(u), out, n));
      close(getF32(out, n), gatedRef(act, g, u), 2e-5, 1e-6, act);
    }
  });

  test('residual add', () => {
    const n = 70_000;
    const a = randomFloats(n, 1);
    const b = randomFloats(n, 2);
    const ab = put(a);
    run(() => ops.add(gpu.cmds, ab, put(b), ab, n));
    assert.deepEqual(getF32(ab, n), Float32Array.from(a, (v, i) => v + b[i]!));
  });

  test('embedding lookup from f32, f16, bf16 and INT8 tables, scaled, ids from a buffer', () => {
    const vocab = 50;
    const hidden = 96;
    const table = randomFloats(vocab * hidden, 5);
    const ids = new Uint32Array([3, 0, 49, 3, 17]);
    const scale = Math.sqrt(hidden);
    const q8 = quantizeQ8(table, vocab, hidden);
    const cases = {
      f32: { data: bytes(table), value: (r: number, i: number) => table[r * hidden + i]!, scales: new Float32Array(4) },
      f16: { data: bytes(f32ArrayToF16(table)), value: (r: number, i: number) => f16ToF32(f32ArrayToF16(table)[r * hidden + i]!), scales: new Float32Array(4) },
      bf16: { data: bytes(f32ArrayToBf16(table)), value: (r: number, i: number) => bf16ToF32(f32ArrayToBf16(table)[r * hidden + i]!), scales: new Float32Array(4) },
      q8: { data: bytes(q8.q), value: (r: number, i: number) => Math.fround(q8.q[r * hidden + i]! * q8.scales[r]!), scales: q8.scales },
    };
    for (const [format, c] of Object.entries(cases)) {
      const out = gpu.alloc.alloc(ids.length * hidden * 4, 'out');
      run(() => ops.embed(gpu.cmds, format as 'f32', put(c.data), put(c.scales), put(ids), out, ids.length, hidden, vocab, scale));
      const want = new Float32Array(ids.length * hidden);
      ids.forEach((id, t) => { for (let i = 0; i < hidden; i++) want[t * hidden + i] = Math.fround(c.value(id, i) * Math.fround(scale)); });
      close(getF32(out, want.length), want, 1e-7, 0, `embed ${format}`);
    }
  });

  describe('attention over the f16 KV cache', () => {
    const d = 32;
    const heads = 4;
    const kvHeads = 2;
    /** Fills a cache through kv_store for positions 0..n-1 and runs the queries at `queryPositions`. */
    function check(n: number, queryPositions: number[], o: { capacity: number; window: number; softcap: number }, seed: number): void {
      const scale = 1 / Math.sqrt(24);
      const k = randomFloats(n * kvHeads * d, seed);
      const v = randomFloats(n * kvHeads * d, seed + 1);
      const q = randomFloats(queryPositions.length * heads * d, seed + 2).map((x) => x * 4);
      const kCache = gpu.alloc.alloc(kvHeads * o.capacity * d * 2, 'k cache');
      const vCache = gpu.alloc.alloc(kvHeads * o.capacity * d * 2, 'v cache');
      const allPositions = put(Uint32Array.from({ length: n }, (_, i) => i));
      run(() => {
        ops.kvStore(gpu.cmds, put(k), allPositions, kCache, n, kvHeads, d, o.capacity);
        ops.kvStore(gpu.cmds, put(v), allPositions, vCache, n, kvHeads, d, o.capacity);
      });
      const out = gpu.alloc.alloc(q.length * 4, 'out');
      run(() => ops.attention(gpu.cmds, put(q), kCache, vCache, put(Uint32Array.from(queryPositions)), out, { tokens: queryPositions.length, heads, kvHeads, headDim: d, capacity: o.capacity, window: o.window, scale, softcap: o.softcap }));
      // The cache as the kernel sees it: [kvHeads, capacity, d], f16, the latest position in each slot.
      const kc = new Float32Array(kvHeads * o.capacity * d);
      const vc = new Float32Array(kvHeads * o.capacity * d);
      const k16 = roundF16(k);
      const v16 = roundF16(v);
      for (let p = 0; p < n; p++) for (let h = 0; h < kvHeads; h++) for (let i = 0; i < d; i++) {
        kc[(h * o.capacity + (p % o.capacity)) * d + i] = k16[(p * kvHeads + h) * d + i]!;
        vc[(h * o.capacity + (p % o.capacity)) * d + i] = v16[(p * kvHeads + h) * d + i]!;
      }
      const want = attentionRef(q, kc, vc, queryPositions, { heads, kvHeads, d, capacity: o.capacity, window: o.window, scale, softcap: o.softcap });
      close(getF32(out, want.length), want, 1e-4, 2e-5, 'attention');
    }
    test('prefill: causal, every position of a 300-token prompt (several chunks of 128)', () => {
      check(300, Array.from({ length: 300 }, (_, i) => i), { capacity: 300, window: 0, softcap: 0 }, 1);
    });
    test('decode: one query at the last position', () => check(200, [199], { capacity: 256, window: 0, softcap: 0 }, 2));
    test('sliding window of 8 over a ring of 8 slots, with softcapping', () => {
      check(40, [0, 3, 7, 8, 20, 39], { capacity: 8, window: 8, softcap: 50 }, 3);
    });
  });

  test('argmax: the first index of the largest value, written where asked', () => {
    const n = 262_208;
    const x = randomFloats(n, 9);
    x[123_456] = 5;
    x[200_000] = 5;
    const out = put(new Uint32Array([7, 7, 7]));
    run(() => ops.argmax(gpu.cmds, put(x), out, n, 1));
    assert.deepEqual([...getU32(out, 3)], [7, argmaxRef(x), 7]);
    assert.equal(argmaxRef(x), 123_456);
  });
});
