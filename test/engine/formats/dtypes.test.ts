import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  bf16ArrayToF32,
  bf16ToF32,
  decodeFloats,
  f16ArrayToF32,
  f16ToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16,
  f32ToF16,
} from '../../../src/engine/formats/dtypes.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { FIXTURES } from '../../support/paths.js';

// Reference values: torch's own conversions, recorded by scripts/fixtures/make_fixtures.py.
const conv = SafetensorsFile.open(path.join(FIXTURES, 'conversions.safetensors'));
const u16 = (name: string) => {
  const b = conv.readAll(name);
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
};
const f32 = (name: string) => {
  const b = conv.readAll(name);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const isNaN16 = (h: number, expBits: number, manMask: number) => ((h >>> 0) & expBits) === expBits && (h & manMask) !== 0;

test('f32 -> bf16 rounds to nearest even exactly as torch does', () => {
  const input = f32('f32_in');
  const want = u16('bf16_out');
  assert.ok(input.length > 8000);
  const bulk = f32ArrayToBf16(input);
  for (let i = 0; i < input.length; i++) {
    const got = f32ToBf16(input[i]!);
    assert.equal(bulk[i], got, `bulk and scalar differ at ${i}`);
    if (Number.isNaN(input[i]!)) assert.ok(isNaN16(got, 0x7f80, 0x7f), `NaN stays NaN at ${i}`);
    else assert.equal(got, want[i], `input ${input[i]} (index ${i}): got 0x${got.toString(16)}, torch 0x${want[i]!.toString(16)}`);
  }
});

test('f32 -> f16 rounds to nearest even exactly as torch does (subnormals, overflow)', () => {
  const input = f32('f32_in');
  const want = u16('f16_out');
  const bulk = f32ArrayToF16(input);
  for (let i = 0; i < input.length; i++) {
    const got = f32ToF16(input[i]!);
    assert.equal(bulk[i], got);
    if (Number.isNaN(input[i]!)) assert.ok(isNaN16(got, 0x7c00, 0x3ff), `NaN stays NaN at ${i}`);
    else assert.equal(got, want[i], `input ${input[i]} (index ${i}): got 0x${got.toString(16)}, torch 0x${want[i]!.toString(16)}`);
  }
});

test('bf16 and f16 -> f32 match torch for all 65,536 bit patterns', () => {
  for (const [bits, want, scalar, bulk] of [
    [u16('bf16_all'), f32('bf16_all_as_f32'), bf16ToF32, bf16ArrayToF32],
    [u16('f16_all'), f32('f16_all_as_f32'), f16ToF32, f16ArrayToF32],
  ] as const) {
    assert.equal(bits.length, 65536);
    const all = bulk(bits);
    for (let h = 0; h < 65536; h++) {
      const w = want[h]!;
      const got = scalar(bits[h]!);
      if (Number.isNaN(w)) {
        assert.ok(Number.isNaN(got) && Number.isNaN(all[h]!), `0x${h.toString(16)} is NaN`);
      } else {
        assert.ok(Object.is(Math.fround(got), w), `0x${h.toString(16)}: got ${got}, torch ${w}`);
        assert.ok(Object.is(all[h], w));
      }
    }
  }
});

test('hand-checked values', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-0), 0x8000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // halfway to the next step rounds to infinity
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie rounds to even (zero)
  assert.equal(f32ToF16(3 * 2 ** -26), 0x0001);
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(bf16ToF32(0xc000), -2);
  assert.deepEqual([...decodeFloats('BF16', new Uint8Array([0x80, 0x3f, 0x00, 0xc0]))], [1, -2]);
  assert.deepEqual([...decodeFloats('F16', new Uint8Array([0x00, 0x3c]))], [1]);
  // Unaligned views decode too.
  const buf = new Uint8Array(9);
  new DataView(buf.buffer).setFloat32(1, 1.5, true);
  new DataView(buf.buffer).setFloat32(5, -3, true);
  assert.deepEqual([...decodeFloats('F32', buf.subarray(1))], [1.5, -3]);
});
