/** A Llama-shaped bf16 checkpoint of about `mb` MB with pseudo-random weights (tests that need bulk). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsWriter, type TensorSpec } from '../../src/engine/formats/safetensors-writer.js';

export function writeSyntheticModel(dir: string, mb: number): void {
  const [h, inter, vocab] = [256, 704, 512];
  const perLayer = (4 * h * h + 3 * h * inter) * 2;
  const layers = Math.max(1, Math.round((mb * 1e6) / perLayer));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: h, intermediate_size: inter, num_hidden_layers: layers,
    num_attention_heads: 4, num_key_value_heads: 4, head_dim: 64, vocab_size: vocab, rms_norm_eps: 1e-5, rope_theta: 10000,
    max_position_embeddings: 512, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  }));
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
  const w = new SafetensorsWriter(path.join(dir, 'model.safetensors'), specs);
  const chunk = new Uint16Array(1 << 20);
  let a = 7;
  for (let i = 0; i < chunk.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    chunk[i] = 0x3c00 | (a & 0x83ff);
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
