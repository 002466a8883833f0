/**
 * How quantized matrices sit in a safetensors file (docs/formats.md, "In a safetensors file"):
 *   INT8: `<name>` I8 [rows, cols] and `<name>.q8_scales` F32 [rows]
 *   INT4: `<name>` U8 [rows, cols / 2] and `<name>.q4_params` U32 [rows, cols / group]
 * `<name>` is the checkpoint's own tensor name, so a quantized model keeps the original's naming.
 * The file metadata records the scheme, the group size, the format version and the source's hash.
 */
import type { QuantizedFormat } from '../kernels/weight-formats.js';

export const FORMAT_VERSION = '1';
export const Q8_SUFFIX = '.q8_scales';
export const Q4_SUFFIX = '.q4_params';

export const META = {
  format: 'unicorn.format',
  scheme: 'unicorn.scheme',
  group: 'unicorn.group',
  source: 'unicorn.source_sha256',
  quality: 'unicorn.quality',
} as const;

/** The main tensor a companion (scales / params) belongs to, or null. */
export function companionOf(name: string): { main: string; kind: QuantizedFormat } | null {
  if (name.endsWith(Q8_SUFFIX)) return { main: name.slice(0, -Q8_SUFFIX.length), kind: 'q8' };
  if (name.endsWith(Q4_SUFFIX)) return { main: name.slice(0, -Q4_SUFFIX.length), kind: 'q4' };
  return null;
}
