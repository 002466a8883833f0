/**
 * Llama-shaped bf16 checkpoints of a given size with pseudo-random weights, for tests and benchmarks
 * that need bulk (quantize, load): not a model, only bytes in the right places.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsWriter, type TensorSpec } from '../../src/engine/formats/safetensors-writer.js';

export interface SyntheticShape {
  readonly hidden: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly heads: number;
  readonly headDim: number;
  readonly maxPositions: number;
  readonly tied: boolean;
}

/** Small enough for tests on lavapipe. */
export const SMALL: SyntheticShape = { hidden: 256, intermediate: 704, vocab: 512, heads: 4, headDim: 64, maxPositions: 512, tied: true };

/** About `bytes` of weights: as many layers of `shape` as fit. */
export function writeSyntheticModel(dir: string, bytes: number, shape: SyntheticShape = SMALL): void {
  const { hidden: h, intermediate: inter, vocab } = shape;
  const perLayer = (4 * h * h + 3 * h * inter) * 2;
  const layers = Math.max(1, Math.round((bytes - (shape.tied ? 1 : 2) * vocab * h * 2) / perLayer));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: h,
      intermediate_size: inter,
      num_hidden_layers: layers,
      num_attention_heads: shape.heads,
      num_key_value_heads: shape.heads,
      head_dim: shape.headDim,
      vocab_size: vocab,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      max_position_embeddings: shape.maxPositions,
      tie_word_embeddings: shape.tied,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
    }),
  );
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [vocab, h] }];
  for (let i = 0; i < layers; i++) {
    const L = `model.layers.${i}.`;
    specs.push(
      { name: `${L}input_layernorm.weight`, dtype: 'BF16', shape: [h] },
      ...['q', 'k', 'v', 'o'].map((p) => ({ name: `${L}self_attn.${p}_proj.weight`, dtype: 'BF16' as const, shape: [h, h] })),
      { name: `${L}post_attention_layernorm.weight`, dtype: 'BF16', shape: [h] },
      { name: `${L}mlp.gate_proj.weight`, dtype: 'BF16', shape: [inter, h] },
      { name: `${L}mlp.up_proj.weight`, dtype: 'BF16', shape: [inter, h] },
      { name: `${L}mlp.down_proj.weight`, dtype: 'BF16', shape: [h, inter] },
    );
  }
  specs.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [h] });
  if (!shape.tied) specs.push({ name: 'lm_head.weight', dtype: 'BF16', shape: [vocab, h] });
  const w = new SafetensorsWriter(path.join(dir, 'model.safetensors'), specs);
  const chunk = new Uint16Array(Math.min(8 << 20, Math.max(1 << 16, bytes / 16)));
  let a = 7;
  for (let i = 0; i < chunk.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    chunk[i] = 0x3c00 | (a & 0x83ff); // bf16 values of magnitude ~0.008-0.03, both signs
  }
  for (const s of specs) {
    let left = s.shape.reduce((x, y) => x * y, 1);
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      w.write(new Uint8Array(chunk.buffer, 0, n * 2));
      left -= n;
    }
  }
  w.commit();
}
