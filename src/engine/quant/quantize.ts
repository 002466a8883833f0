/**
 * The quantized weight layouts (docs/formats.md) and their CPU reference: what `unicorn quantize`
 * writes and the matrix x vector kernels read.
 *
 * INT8 (q8): symmetric per output row. q[r, c] = round(w / s_r) in [-127, 127], s_r = max|w[r, :]| / 127;
 *   stored as int8 [rows, cols] row-major and f32 scales [rows]. w ~ q * s.
 * INT4 (q4): asymmetric per group of G consecutive values of a row (G = 32, 64 or 128, cols % G == 0).
 *   q in [0, 15], d = (max - min) / 15, m = min: w ~ q * d + m. Stored as packed bytes [rows, cols / 2]
 *   (value 2j in the low nibble of byte j, 2j + 1 in the high nibble) and one u32 per group
 *   [rows, cols / G]: f16 d in the low half, f16 m in the high half.
 */
import { f16ToF32, f32ToF16 } from '../formats/dtypes.js';

export interface Q8Matrix {
  readonly q: Int8Array;
  readonly scales: Float32Array;
}

export interface Q4Matrix {
  readonly packed: Uint8Array;
  readonly params: Uint32Array;
  readonly group: number;
}

export function quantizeQ8(w: Float32Array, rows: number, cols: number): Q8Matrix {
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]!));
    const s = amax / 127;
    scales[r] = s;
    const inv = s === 0 ? 0 : 1 / s;
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c]! * inv)));
  }
  return { q, scales };
}

export function quantizeQ4(w: Float32Array, rows: number, cols: number, group: number): Q4Matrix {
  if (cols % group !== 0 || group % 32 !== 0) throw new RangeError(`INT4: ${cols} columns are not a multiple of the group size ${group} (a multiple of 32)`);
  const groups = cols / group;
  const packed = new Uint8Array((rows * cols) / 2);
  const params = new Uint32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const start = r * cols + g * group;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = start; i < start + group; i++) {
        const v = w[i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      // Quantize against the f16-rounded d and m that the kernel will see.
      const dBits = f32ToF16((hi - lo) / 15);
      const mBits = f32ToF16(lo);
      const d = f16ToF32(dBits);
      const m = f16ToF32(mBits);
      const inv = d === 0 ? 0 : 1 / d;
      params[r * groups + g] = (dBits | (mBits << 16)) >>> 0;
      // q = round((w - m) / d) clamped to [0, 15]: (x + 0.5) | 0 rounds x >= -0.5 half up like Math.round.
      for (let i = start; i < start + group; i += 2) {
        const a = Math.min(15, Math.max(0, ((w[i]! - m) * inv + 0.5) | 0));
        const b = Math.min(15, Math.max(0, ((w[i + 1]! - m) * inv + 0.5) | 0));
        packed[i >> 1] = a | (b << 4);
      }
    }
  }
  return { packed, params, group };
}

export function dequantizeQ8(m: Q8Matrix, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = m.q[r * cols + c]! * m.scales[r]!;
  return out;
}

export function dequantizeQ4(m: Q4Matrix, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const groups = cols / m.group;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const idx = r * cols + c;
      const p = m.params[r * groups + Math.floor(c / m.group)]!;
      const byte = m.packed[idx >> 1]!;
      const qv = (idx & 1) === 0 ? byte & 15 : byte >> 4;
      out[idx] = qv * f16ToF32(p & 0xffff) + f16ToF32(p >>> 16);
    }
  }
  return out;
}

/** y = W x in f64 accumulation over f32 weights (the reference the kernels are checked against). */
export function matvecRef(w: Float32Array, x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let c = 0; c < cols; c++) acc += w[r * cols + c]! * x[c]!;
    y[r] = acc;
  }
  return y;
}

/** Round half to even, as GLSL's roundEven. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Activations for the integer-dot INT4 path (shaders/quantize_x.comp): per block of 32 values,
 * s = max|x| / 127 and q = roundEven(x / s) in [-127, 127]. Returns the values x is replaced by
 * (q * s), what the kernel's result corresponds to, and the largest s (for test tolerances).
 */
export function quantizeActivations(x: Float32Array): { values: Float32Array; maxScale: number } {
  const values = new Float32Array(x.length);
  let maxScale = 0;
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let i = b; i < b + 32; i++) amax = Math.max(amax, Math.abs(x[i]!));
    const s = Math.fround(amax / 127);
    maxScale = Math.max(maxScale, s);
    const inv = s > 0 ? Math.fround(1 / s) : 0;
    for (let i = b; i < b + 32; i++) values[i] = Math.max(-127, Math.min(127, roundEven(Math.fround(x[i]! * inv)))) * s;
  }
  return { values, maxScale };
}
