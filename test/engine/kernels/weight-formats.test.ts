/**
 * The weight-format table (src/engine/kernels/weight-formats.ts) against itself, the shaders that
 * decode the formats and the quantizers: sizes that add up to 16-byte blocks, the shaders' values
 * per block and defines, stored shapes, params per row, dtypes, and each format's CPU dequantizer.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { f16ToF32, f32ArrayToBf16, f32ArrayToF16, bf16ToF32 } from '../../../src/engine/formats/dtypes.js';
import {
  EMBEDDING_FORMATS,
  INT8_FORMATS,
  WEIGHT_FORMATS,
  WEIGHT_FORMAT_NAMES,
  type WeightFormat,
  floatFormatOf,
  isGrouped,
  matrixRowBytes,
  paramsRowBytes,
  storedShape,
  valuesPerRow,
} from '../../../src/engine/kernels/weight-formats.js';
import { Q4_SUFFIX, Q8_SUFFIX, companionOf } from '../../../src/engine/quant/file-format.js';
import { quantizeQ4, quantizeQ8 } from '../../../src/engine/quant/quantize.js';
import { randomFloats } from '../../support/gpu.js';
import { stripComments } from '../../support/glsl.js';
import { ROOT } from '../../support/paths.js';

const shader = (f: string) => stripComments(fs.readFileSync(path.join(ROOT, 'shaders', f), 'utf8'));
const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('the weight-format table', () => {
  test('a 16-byte block holds valuesPerBlock values of bytesPerValue bytes, as matvec_base.glsl counts them', () => {
    // The VALS chain: `#if defined(W_F32)` / `#elif defined(W_F16) || defined(W_BF16)` ... `const uint VALS = n;`.
    const vals = new Map<string, number>();
    for (const m of shader('matvec_base.glsl').matchAll(/#(?:el)?if ([^\n]*)\s*const uint VALS = (\d+);/g)) {
      for (const d of m[1]!.matchAll(/defined\((\w+)\)/g)) vals.set(d[1]!, Number(m[2]));
    }
    for (const f of WEIGHT_FORMAT_NAMES) {
      const row = WEIGHT_FORMATS[f];
      assert.equal(row.valuesPerBlock * row.bytesPerValue, 16, f);
      assert.equal(vals.get(row.define), row.valuesPerBlock, `${f}: VALS in matvec_base.glsl`);
    }
    assert.equal(vals.size, WEIGHT_FORMAT_NAMES.length, 'a VALS for every format, none for a format the table lacks');
  });

  test("each format's define selects its decoding in the shaders that read it", () => {
    const defines = (f: string) => new Set([...shader(f).matchAll(/defined\((\w+)\)/g)].map((m) => m[1]!));
    for (const file of ['matvec_blocks.glsl', 'matmul.comp']) {
      for (const f of WEIGHT_FORMAT_NAMES) assert.ok(defines(file).has(WEIGHT_FORMATS[f].define), `${f} (${WEIGHT_FORMATS[f].define}) in ${file}`);
    }
    const int8 = defines('matvec_blocks_int8.glsl');
    for (const f of WEIGHT_FORMAT_NAMES)
      assert.equal(
        int8.has(WEIGHT_FORMATS[f].define),
        INT8_FORMATS.includes(f as never),
        `${f} in matvec_blocks_int8.glsl exactly when it takes int8 activations`,
      );
    const embed = defines('embed.comp');
    for (const f of WEIGHT_FORMAT_NAMES) {
      const d = WEIGHT_FORMATS[f].embedDefine;
      assert.equal(d !== null && embed.has(d), EMBEDDING_FORMATS.includes(f as never), `${f} in embed.comp exactly when embeddings may be stored in it`);
    }
  });

  test('row bytes, params per row or per group, stored shapes', () => {
    const [rows, cols, group] = [3, 256, 64];
    const want: Record<WeightFormat, { row: number; params: number; stored: [number, number] }> = {
      f32: { row: 1024, params: 0, stored: [3, 256] },
      f16: { row: 512, params: 0, stored: [3, 256] },
      bf16: { row: 512, params: 0, stored: [3, 256] },
      q8: { row: 256, params: 4, stored: [3, 256] },
      q4: { row: 128, params: 16, stored: [3, 128] },
    };
    for (const f of WEIGHT_FORMAT_NAMES) {
      assert.equal(matrixRowBytes(f, cols), want[f].row, f);
      assert.equal(paramsRowBytes(f, cols, group), want[f].params, f);
      assert.deepEqual(storedShape(f, rows, cols), want[f].stored, f);
      assert.equal(valuesPerRow(f, want[f].stored[1]), cols, f);
      assert.equal(isGrouped(f), f === 'q4', f);
    }
    assert.equal(floatFormatOf('BF16'), 'bf16');
    assert.equal(floatFormatOf('F32'), 'f32');
    assert.equal(floatFormatOf('I8'), undefined, 'INT8 values are not a float format');
    // The companions a checkpoint may hold are the quantized formats' params.
    assert.deepEqual(
      [Q8_SUFFIX, Q4_SUFFIX].map((s) => companionOf(`w${s}`)!.kind).sort(),
      WEIGHT_FORMAT_NAMES.filter((f) => WEIGHT_FORMATS[f].params !== null).sort(),
    );
  });

  test("each format's CPU dequantizer reads the bytes its quantizer (or its float encoding) wrote", () => {
    const [rows, cols, group] = [4, 64, 32];
    const w = randomFloats(rows * cols, 5);
    const close = (got: Float32Array, want: Float32Array | number[], what: string) => {
      assert.equal(got.length, want.length, what);
      for (let i = 0; i < got.length; i++) assert.equal(got[i], want[i], `${what}[${i}]`);
    };
    close(WEIGHT_FORMATS.f32.dequantize(bytes(w), null, rows, cols, 0), w, 'f32');
    const h = f32ArrayToF16(w);
    close(WEIGHT_FORMATS.f16.dequantize(bytes(h), null, rows, cols, 0), Array.from(h, f16ToF32), 'f16');
    const b = f32ArrayToBf16(w);
    close(WEIGHT_FORMATS.bf16.dequantize(bytes(b), null, rows, cols, 0), Array.from(b, bf16ToF32), 'bf16');
    const q8 = quantizeQ8(w, rows, cols);
    close(
      WEIGHT_FORMATS.q8.dequantize(bytes(q8.q), bytes(q8.scales), rows, cols, 0),
      Array.from({ length: rows * cols }, (_, i) => Math.fround(q8.q[i]! * q8.scales[Math.floor(i / cols)]!)),
      'q8',
    );
    const q4 = quantizeQ4(w, rows, cols, group);
    const q4want = Array.from({ length: rows * cols }, (_, i) => {
      const p = q4.params[Math.floor(i / cols) * (cols / group) + Math.floor((i % cols) / group)]!;
      const q = (q4.packed[i >> 1]! >> (4 * (i & 1))) & 15;
      return Math.fround(q * f16ToF32(p & 0xffff) + f16ToF32(p >>> 16));
    });
    close(WEIGHT_FORMATS.q4.dequantize(q4.packed, bytes(q4.params), rows, cols, group), q4want, 'q4');
  });
});
