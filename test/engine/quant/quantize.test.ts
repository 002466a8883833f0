/**
 * The quantized layouts' reference (src/engine/quant/quantize.ts): round-trip error bounds per format,
 * argued from the format, and the layout details docs/formats.md promises.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ToF32 } from '../../../src/engine/formats/dtypes.js';
import { dequantizeQ4, dequantizeQ8, quantizeQ4, quantizeQ8 } from '../../../src/engine/quant/quantize.js';
import { randomFloats } from '../../support/gpu.js';

const rows = 37;
const cols = 256;
// Rows of different scales, an all-zero row and a constant row: the edge cases of both formats.
const w = randomFloats(rows * cols, 5).map((v, i) => v * 10 ** ((Math.floor(i / cols) % 5) - 2));
w.fill(0, 3 * cols, 4 * cols);
w.fill(0.37, 5 * cols, 6 * cols);

test('INT8: every weight within half a step (s / 2) of its value; scale = max|row| / 127', () => {
  const q = quantizeQ8(w, rows, cols);
  const back = dequantizeQ8(q, rows, cols);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]!));
    assert.ok(Math.abs(q.scales[r]! - Math.fround(amax / 127)) <= 1e-7 * amax, `row ${r} scale`);
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      assert.ok(Math.abs(back[i]! - w[i]!) <= q.scales[r]! / 2 + 1e-7 * amax, `row ${r} col ${c}: ${back[i]} vs ${w[i]}`);
      assert.ok(q.q[i]! >= -127 && q.q[i]! <= 127);
    }
  }
  assert.ok(
    back.subarray(3 * cols, 4 * cols).every((v) => v === 0),
    'an all-zero row stays zero',
  );
});

for (const group of [32, 64, 128]) {
  test(`INT4 group ${group}: within half a step (d / 2) plus the f16 rounding of m; nibbles low-first; d, m as f16`, () => {
    const q = quantizeQ4(w, rows, cols, group);
    const back = dequantizeQ4(q, rows, cols);
    const groups = cols / group;
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < groups; g++) {
        const p = q.params[r * groups + g]!;
        const d = f16ToF32(p & 0xffff);
        const m = f16ToF32(p >>> 16);
        let lo = Infinity;
        let hi = -Infinity;
        for (let i = 0; i < group; i++) {
          const v = w[r * cols + g * group + i]!;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        // m is the group minimum rounded to f16 (relative 2^-11); q covers [m, m + 15 d].
        const slack = Math.abs(lo) * 2 ** -11 + Math.abs(hi - lo) * 2 ** -10;
        for (let i = 0; i < group; i++) {
          const at = r * cols + g * group + i;
          assert.ok(Math.abs(back[at]! - w[at]!) <= d / 2 + slack + 1e-12, `r${r} g${g} i${i}: ${back[at]} vs ${w[at]} (d ${d})`);
          const byte = q.packed[at >> 1]!;
          const nib = at % 2 === 0 ? byte & 15 : byte >> 4;
          assert.equal(back[at], nib * d + m, 'value 2j in the low nibble of byte j');
        }
      }
    }
    assert.ok(
      back.subarray(5 * cols, 6 * cols).every((v) => Math.abs(v - 0.37) < 0.37 * 2 ** -10),
      'a constant row comes back (d = 0, m = the value in f16)',
    );
  });
}

test('INT4 refuses rows that do not split into whole groups', () => {
  assert.throws(() => quantizeQ4(w, rows, cols, 48), /multiple of the group size 48/);
  assert.throws(() => quantizeQ4(new Float32Array(96), 1, 96, 64), /96 columns are not a multiple of the group size 64/);
});
