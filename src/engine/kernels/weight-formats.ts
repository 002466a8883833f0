/**
 * The weight formats, one row each (docs/formats.md has the byte layouts): what a 16-byte block of a
 * matrix row holds, the second tensor a quantized matrix comes with (its params), the dtypes a
 * checkpoint stores them as, the shader define that selects the format's decoding, whether an
 * embedding table may be stored in it, whether a matrix x vector of it takes int8 activations, and
 * the CPU's dequantizer. Everything that asks which format a matrix is in and what follows from it
 * reads this table: the kernels' host side (matvec.ts, matmul.ts, ops.ts), the kernel table
 * (table.ts: the shader variants it builds), the weight loader (weights.ts), the checkpoint binder
 * (tensors.ts) and the CPU backend. A new format is a new row here, its decoding in the shaders
 * (shaders/matvec_blocks.glsl, matmul.comp, embed.comp) and its quantizer in quant/.
 */
import { DTYPE_SIZES, type DType, decodeFloats } from '../formats/dtypes.js';
import { INT4_GROUPS } from '../quant/layouts.js';
import { dequantizeQ4, dequantizeQ8 } from '../quant/quantize.js';

/** The params of a quantized format: one u32-sized entry per row or per group of a row. */
export interface ParamsLayout {
  /** What the checkpoint calls them in messages: INT8's `scales`, INT4's `params`. */
  readonly noun: string;
  /** An entry per row (INT8: the row's f32 scale), or per group of consecutive values of a row (INT4: f16 d and m). */
  readonly per: 'row' | 'group';
  /** The entry's dtype in a checkpoint; 4 bytes. */
  readonly dtype: DType;
  /** Group sizes a format with params per group allows (a multiple of 32 each: a block of int8 activations). */
  readonly groups?: readonly number[];
}

export interface WeightFormatInfo {
  /** As messages and docs name it. */
  readonly label: string;
  /** Values per 16-byte block: a row is read in whole blocks, so its length is a multiple of this. */
  readonly valuesPerBlock: number;
  /** Bytes per value (16 / valuesPerBlock). */
  readonly bytesPerValue: number;
  /** The dtype a checkpoint stores the values as: the float format's own, or the packed integers. */
  readonly dtype: DType;
  /** A quantized format's params (its companion tensor); null for the float formats. */
  readonly params: ParamsLayout | null;
  /** The define that selects the format's decoding in matvec.comp, matvec_dot.comp and matmul.comp. */
  readonly define: string;
  /** embed.comp's define, where an embedding table may be stored in the format; null if not. */
  readonly embedDefine: string | null;
  /**
   * Whether a matrix x vector of the format can read int8 activations (matvec_dot.comp, on devices
   * with integer dot products), and whether, given x as floats, it quantizes x first to get them
   * (INT4: 2-3x faster on the H100 for it; INT8 gained nothing from the extra pass, so it takes
   * the integer-dot path only when a producer wrote x as int8 already), and the byte order of the
   * int8 x it reads (shaders/quant_act.glsl writes both: natural, or the nibble order that meets
   * INT4's low and high nibbles). Null: floats only.
   */
  readonly int8: { readonly quantizeFloatX: boolean; readonly order: 'natural' | 'nibble' } | null;
  /**
   * The CPU's dequantizer: a [rows, cols] matrix as f32 from the checkpoint bytes of its values and
   * of its params (none for a float format; INT4's group size from the params' shape).
   */
  readonly dequantize: (values: Uint8Array, params: Uint8Array | null, rows: number, cols: number, group: number) => Float32Array;
}

type Dequantizer = WeightFormatInfo['dequantize'];
const floats =
  (dtype: DType): Dequantizer =>
  (values) =>
    decodeFloats(dtype, values);
const int8: Dequantizer = (values, params, rows, cols) =>
  dequantizeQ8(
    { q: new Int8Array(values.buffer, values.byteOffset, values.byteLength), scales: new Float32Array(params!.buffer, params!.byteOffset, rows) },
    rows,
    cols,
  );
const int4: Dequantizer = (values, params, rows, cols, group) =>
  dequantizeQ4({ packed: values, params: new Uint32Array(params!.buffer, params!.byteOffset, params!.byteLength / 4), group }, rows, cols);

export const WEIGHT_FORMATS = {
  f32: {
    label: 'f32',
    valuesPerBlock: 4,
    bytesPerValue: 4,
    dtype: 'F32',
    params: null,
    define: 'W_F32',
    embedDefine: 'E_F32',
    int8: null,
    dequantize: floats('F32'),
  },
  f16: {
    label: 'f16',
    valuesPerBlock: 8,
    bytesPerValue: 2,
    dtype: 'F16',
    params: null,
    define: 'W_F16',
    embedDefine: 'E_F16',
    int8: null,
    dequantize: floats('F16'),
  },
  bf16: {
    label: 'bf16',
    valuesPerBlock: 8,
    bytesPerValue: 2,
    dtype: 'BF16',
    params: null,
    define: 'W_BF16',
    embedDefine: 'E_BF16',
    int8: null,
    dequantize: floats('BF16'),
  },
  q8: {
    label: 'INT8',
    valuesPerBlock: 16,
    bytesPerValue: 1,
    dtype: 'I8',
    params: { noun: 'scales', per: 'row', dtype: 'F32' },
    define: 'W_Q8',
    embedDefine: 'E_Q8',
    int8: { quantizeFloatX: false, order: 'natural' },
    dequantize: int8,
  },
  q4: {
    label: 'INT4',
    valuesPerBlock: 32,
    bytesPerValue: 0.5,
    dtype: 'U8',
    params: { noun: 'params', per: 'group', dtype: 'U32', groups: INT4_GROUPS },
    define: 'W_Q4',
    embedDefine: null,
    int8: { quantizeFloatX: true, order: 'nibble' },
    dequantize: int4,
  },
} as const satisfies Record<string, WeightFormatInfo>;

export type WeightFormat = keyof typeof WEIGHT_FORMATS;
type Row<F extends WeightFormat> = (typeof WEIGHT_FORMATS)[F];
/** The formats stored with params (unicorn quantize's): INT8, INT4. */
export type QuantizedFormat = { [F in WeightFormat]: Row<F>['params'] extends null ? never : F }[WeightFormat];
/** The formats an embedding table may be stored in. */
export type EmbeddingFormat = { [F in WeightFormat]: Row<F>['embedDefine'] extends null ? never : F }[WeightFormat];
/** The formats whose matrix x vector can read int8 activations. */
export type Int8Format = { [F in WeightFormat]: Row<F>['int8'] extends null ? never : F }[WeightFormat];

/** Every format, in the table's order. */
export const WEIGHT_FORMAT_NAMES = Object.keys(WEIGHT_FORMATS) as WeightFormat[];
export const EMBEDDING_FORMATS = WEIGHT_FORMAT_NAMES.filter((f): f is EmbeddingFormat => WEIGHT_FORMATS[f].embedDefine !== null);
export const INT8_FORMATS = WEIGHT_FORMAT_NAMES.filter((f): f is Int8Format => WEIGHT_FORMATS[f].int8 !== null);

export function formatInfo(f: WeightFormat): WeightFormatInfo {
  return WEIGHT_FORMATS[f];
}

export function isEmbeddingFormat(f: WeightFormat): f is EmbeddingFormat {
  return WEIGHT_FORMATS[f].embedDefine !== null;
}

export function takesInt8(f: WeightFormat): f is Int8Format {
  return WEIGHT_FORMATS[f].int8 !== null;
}

/** Whether the format's params are per group of a row (its matrices carry a group size). */
export function isGrouped(f: WeightFormat): boolean {
  return formatInfo(f).params?.per === 'group';
}

/** The float format a checkpoint dtype is, if any (what an unquantized matrix is read as). */
export function floatFormatOf(dtype: DType): WeightFormat | undefined {
  return WEIGHT_FORMAT_NAMES.find((f) => WEIGHT_FORMATS[f].params === null && WEIGHT_FORMATS[f].dtype === dtype);
}

/** Bytes of one row of `cols` values. */
export function matrixRowBytes(format: WeightFormat, cols: number): number {
  return cols * WEIGHT_FORMATS[format].bytesPerValue;
}

/** Bytes of one row's params (4 per entry: one per row, or one per group of `group` values). */
export function paramsRowBytes(format: WeightFormat, cols: number, group: number): number {
  const p = formatInfo(format).params;
  return p === null ? 0 : p.per === 'row' ? 4 : (cols / group) * 4;
}

/** The shape a checkpoint stores a [rows, cols] matrix's values as (INT4: [rows, cols / 2] bytes). */
export function storedShape(format: WeightFormat, rows: number, cols: number): [number, number] {
  const f = WEIGHT_FORMATS[format];
  return [rows, (cols * f.bytesPerValue) / DTYPE_SIZES[f.dtype]];
}

/** The values per row of a matrix stored with `storedCols` columns (storedShape's inverse). */
export function valuesPerRow(format: WeightFormat, storedCols: number): number {
  const f = WEIGHT_FORMATS[format];
  return (storedCols * DTYPE_SIZES[f.dtype]) / f.bytesPerValue;
}
