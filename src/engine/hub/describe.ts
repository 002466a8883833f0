/** What `unicorn list` says of a model directory: its weight format and its quantization, from the files alone. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OUTPUT_MARKER } from '../quant/quantize-model.js';

const FORMATS: readonly [string, string][] = [
  ['.safetensors', 'safetensors'],
  ['.gguf', 'gguf'],
  ['.bin', 'pytorch'],
  ['.pth', 'pytorch'],
  ['.onnx', 'onnx'],
];

/** The weight formats among `files` (paths relative to the model directory), e.g. "safetensors" or "safetensors, gguf". */
export function weightFormat(files: readonly string[]): string {
  const found = new Set<string>();
  for (const f of files) for (const [ext, name] of FORMATS) if (f.endsWith(ext)) found.add(name);
  return found.size === 0 ? '-' : [...found].join(', ');
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The quantization: unicorn's own (its output marker: int8 / int4 / mixed), a quantization_config's
 * method and bits (awq, gptq, fp8...), else the dtype the config says the weights are in (bf16...).
 */
export function quantization(dir: string): string {
  const marker = readJson(path.join(dir, OUTPUT_MARKER));
  if (marker !== undefined && typeof marker['scheme'] === 'string')
    return `unicorn ${marker['scheme']}${typeof marker['group'] === 'number' ? ` (group ${marker['group']})` : ''}`;
  const config = readJson(path.join(dir, 'config.json'));
  if (config === undefined) return '-';
  const text = typeof config['text_config'] === 'object' && config['text_config'] !== null ? (config['text_config'] as Record<string, unknown>) : {};
  const q = (config['quantization_config'] ?? text['quantization_config']) as Record<string, unknown> | undefined;
  if (typeof q === 'object' && q !== null) {
    const method = typeof q['quant_method'] === 'string' ? q['quant_method'] : 'quantized';
    const bits = typeof q['bits'] === 'number' ? ` ${q['bits']}-bit` : '';
    return `${method}${bits}`;
  }
  const dtype = config['torch_dtype'] ?? config['dtype'] ?? text['torch_dtype'] ?? text['dtype'];
  const short: Record<string, string> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };
  return typeof dtype === 'string' ? (short[dtype] ?? dtype) : '-';
}
