/**
 * Sizes of the weight storage formats (docs/formats.md documents the byte layouts).
 * - INT8: symmetric, one f32 scale per output row.
 * - INT4: asymmetric, grouped along the input dimension; per group an f16 scale and an f16 minimum,
 *   two 4-bit values per byte.
 */
export type WeightFormat =
  { readonly kind: 'float'; readonly bytesPerElement: number } | { readonly kind: 'int8' } | { readonly kind: 'int4'; readonly group: number };

export const INT4_GROUPS = [32, 64, 128] as const;
export type Int4Group = (typeof INT4_GROUPS)[number];
export const DEFAULT_INT4_GROUP: Int4Group = 64;

/** Bytes of a [rows, cols] matrix stored in the given format. */
export function matrixBytes(rows: number, cols: number, f: WeightFormat): number {
  switch (f.kind) {
    case 'float':
      return rows * cols * f.bytesPerElement;
    case 'int8':
      return rows * cols + rows * 4;
    case 'int4':
      return rows * Math.ceil(cols / 2) + rows * Math.ceil(cols / f.group) * 4;
  }
}
