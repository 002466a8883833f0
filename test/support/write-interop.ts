/**
 * Writes safetensors files with unicorn's writer, plus expected.json describing their contents, so
 * that scripts/fixtures/check_written.py can load them with Python's safetensors and compare.
 * Run: node dist/test/support/write-interop.js DIR
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DType, f32ToBf16, f32ToF16 } from '../../src/engine/formats/dtypes.js';
import { SafetensorsWriter, writeSafetensors } from '../../src/engine/formats/safetensors-writer.js';

interface Spec {
  name: string;
  dtype: DType;
  shape: number[];
  values: number[];
}

function encode(dtype: DType, values: readonly number[]): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'F32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'F16':
      return new Uint8Array(Uint16Array.from(values, f32ToF16).buffer);
    case 'BF16':
      return new Uint8Array(Uint16Array.from(values, f32ToBf16).buffer);
    case 'I64':
      return new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
    case 'I32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'I16':
      return new Uint8Array(Int16Array.from(values).buffer);
    case 'I8':
      return new Uint8Array(Int8Array.from(values).buffer);
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(values);
    default:
      throw new Error(`no encoder for ${dtype} (${n} values)`);
  }
}

/** Exactly representable values per dtype, so any mismatch is a real one. */
export function interopSpecs(): Record<string, { metadata: Record<string, string>; tensors: Spec[] }> {
  const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
  return {
    'all-dtypes.safetensors': {
      metadata: { format: 'pt', writer: 'unicorn', note: 'ünïcødé ✓' },
      tensors: [
        { name: 'f32', dtype: 'F32', shape: [3, 4], values: range(12, (i) => i * 0.5 - 2.75) },
        { name: 'f16', dtype: 'F16', shape: [5], values: [0, -1.5, 65504, 2 ** -24, -(2 ** -14)] },
        { name: 'bf16', dtype: 'BF16', shape: [2, 3], values: [1, -2, 0.5, 2 ** 127, 2 ** -120, -0.0078125] },
        { name: 'f64', dtype: 'F64', shape: [2], values: [Math.PI, -1e300] },
        { name: 'i64', dtype: 'I64', shape: [2], values: [-(2 ** 40), 123456789] },
        { name: 'i32', dtype: 'I32', shape: [2, 2], values: [-(2 ** 31), 2 ** 31 - 1, 0, 7] },
        { name: 'i16', dtype: 'I16', shape: [3], values: [-32768, 32767, 5] },
        { name: 'i8', dtype: 'I8', shape: [4], values: [-128, 127, 0, -1] },
        { name: 'u8', dtype: 'U8', shape: [3], values: [0, 255, 128] },
        { name: 'bool', dtype: 'BOOL', shape: [3], values: [1, 0, 1] },
        { name: 'empty', dtype: 'F32', shape: [0, 7], values: [] },
        { name: 'scalar', dtype: 'F32', shape: [], values: [42.5] },
      ],
    },
    'streamed.safetensors': {
      metadata: {},
      tensors: [
        { name: 'layers.0.w', dtype: 'BF16', shape: [64, 33], values: range(64 * 33, (i) => ((i % 97) - 48) / 16) },
        { name: 'layers.1.w', dtype: 'F32', shape: [1000], values: range(1000, (i) => i / 8) },
      ],
    },
  };
}

export function writeInterop(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const specs = interopSpecs();
  // The first file in one call; the second streamed in odd-sized chunks.
  const [first, second] = Object.entries(specs) as [[string, (typeof specs)[string]], [string, (typeof specs)[string]]];
  writeSafetensors(
    path.join(dir, first[0]),
    first[1].tensors.map((t) => ({ ...t, data: encode(t.dtype, t.values) })),
    first[1].metadata,
  );
  const w = new SafetensorsWriter(path.join(dir, second[0]), second[1].tensors, second[1].metadata);
  for (const t of second[1].tensors) {
    const bytes = encode(t.dtype, t.values);
    for (let o = 0; o < bytes.byteLength; o += 37) w.write(bytes.subarray(o, Math.min(o + 37, bytes.byteLength)));
  }
  w.commit();
  const expected = Object.fromEntries(
    Object.entries(specs).map(([f, s]) => [
      f,
      {
        metadata: s.metadata,
        tensors: Object.fromEntries(s.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, values: t.values }])),
      },
    ]),
  );
  fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected));
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: write-interop.js DIR');
  writeInterop(dir);
  console.log(`wrote ${fs.readdirSync(dir).length} files to ${dir}`);
}
