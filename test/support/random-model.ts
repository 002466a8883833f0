/**
 * Tiny random checkpoints of any shape, written in the test (no fixtures): a transformers 5 config
 * for Gemma 3, Llama or Qwen 2 and bf16 weights spread as scripts/fixtures/make_fixtures.py spreads
 * them (unit-variance projections, small embeddings, norms away from their trivial values), so that
 * the layers matter and greedy choices are usually clear. For the GPU-against-CPU sweep.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { f32ArrayToBf16 } from '../../src/engine/formats/dtypes.js';
import { SafetensorsWriter, type TensorSpec } from '../../src/engine/formats/safetensors-writer.js';

export type Family = 'gemma3' | 'llama' | 'qwen2';
export type RopeKind = 'default' | 'linear' | 'llama3';

export interface RandomShape {
  readonly family: Family;
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  /** Gemma 3: sliding window of its sliding layers (every `pattern`-th layer is global). */
  readonly window?: number;
  readonly pattern?: number;
  /** Gemma 3: attention logit softcap and final logit softcap (0 = none). */
  readonly softcap?: number;
  readonly finalSoftcap?: number;
  /** Gemma 3: query_pre_attn_scalar (default head_dim). */
  readonly qScalar?: number;
  /** Rope of the global layers (Gemma 3's sliding layers always take the default). */
  readonly rope: RopeKind;
  readonly tied: boolean;
  readonly maxPositions?: number;
  readonly seed: number;
}

/** Deterministic standard normals (xorshift + Box-Muller). */
function normals(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

function ropeParameters(kind: RopeKind, theta: number): Record<string, unknown> {
  if (kind === 'linear') return { rope_type: 'linear', factor: 8.0, rope_theta: theta };
  if (kind === 'llama3')
    return { rope_type: 'llama3', rope_theta: theta, factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 };
  return { rope_type: 'default', rope_theta: theta };
}

export function randomConfig(s: RandomShape): Record<string, unknown> {
  const common = {
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    vocab_size: s.vocab,
    max_position_embeddings: s.maxPositions ?? 256,
    tie_word_embeddings: s.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    dtype: 'bfloat16',
    transformers_version: '5.17.0',
  };
  if (s.family === 'gemma3') {
    const pattern = s.pattern ?? 6;
    return {
      ...common,
      architectures: ['Gemma3ForCausalLM'],
      model_type: 'gemma3_text',
      rms_norm_eps: 1e-6,
      hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: s.qScalar ?? s.headDim,
      sliding_window: s.window ?? 8,
      attn_logit_softcapping: s.softcap || null,
      final_logit_softcapping: s.finalSoftcap || null,
      pad_token_id: 0,
      layer_types: Array.from({ length: s.layers }, (_, i) => ((i + 1) % pattern === 0 ? 'full_attention' : 'sliding_attention')),
      rope_parameters: { full_attention: ropeParameters(s.rope, 1_000_000), sliding_attention: ropeParameters('default', 10_000) },
    };
  }
  const arch =
    s.family === 'llama'
      ? { architectures: ['LlamaForCausalLM'], model_type: 'llama', attention_bias: false, mlp_bias: false }
      : { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false };
  return { ...common, ...arch, hidden_act: 'silu', rms_norm_eps: 1e-6, rope_parameters: ropeParameters(s.rope, s.family === 'llama' ? 500_000 : 1_000_000) };
}

/** Writes config.json and model.safetensors for the shape into `dir` (created). */
export function writeRandomModel(dir: string, s: RandomShape): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(randomConfig(s), null, 2));
  const gemma = s.family === 'gemma3';
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const h = s.hidden;
  // [name, shape, how its values are drawn]
  type Kind = 'embed' | 'matrix' | 'final-norm' | 'norm' | 'bias';
  const tensors: [string, number[], Kind][] = [['model.embed_tokens.weight', [s.vocab, h], 'embed']];
  for (let i = 0; i < s.layers; i++) {
    const L = `model.layers.${i}.`;
    tensors.push(
      [`${L}input_layernorm.weight`, [h], 'norm'],
      [`${L}self_attn.q_proj.weight`, [q, h], 'matrix'],
      [`${L}self_attn.k_proj.weight`, [kv, h], 'matrix'],
      [`${L}self_attn.v_proj.weight`, [kv, h], 'matrix'],
      [`${L}self_attn.o_proj.weight`, [h, q], 'matrix'],
    );
    if (s.family === 'qwen2')
      tensors.push([`${L}self_attn.q_proj.bias`, [q], 'bias'], [`${L}self_attn.k_proj.bias`, [kv], 'bias'], [`${L}self_attn.v_proj.bias`, [kv], 'bias']);
    if (gemma) tensors.push([`${L}self_attn.q_norm.weight`, [s.headDim], 'norm'], [`${L}self_attn.k_norm.weight`, [s.headDim], 'norm']);
    tensors.push([`${L}post_attention_layernorm.weight`, [h], 'norm']);
    if (gemma) tensors.push([`${L}pre_feedforward_layernorm.weight`, [h], 'norm'], [`${L}post_feedforward_layernorm.weight`, [h], 'norm']);
    tensors.push(
      [`${L}mlp.gate_proj.weight`, [s.intermediate, h], 'matrix'],
      [`${L}mlp.up_proj.weight`, [s.intermediate, h], 'matrix'],
      [`${L}mlp.down_proj.weight`, [h, s.intermediate], 'matrix'],
    );
  }
  tensors.push(['model.norm.weight', [h], 'final-norm']);
  if (!s.tied) tensors.push(['lm_head.weight', [s.vocab, h], 'embed']);
  const specs: TensorSpec[] = tensors.map(([name, shape]) => ({ name, dtype: 'BF16', shape }));
  const w = new SafetensorsWriter(path.join(dir, 'model.safetensors'), specs);
  try {
    tensors.forEach(([, shape, kind], i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = normals(n, s.seed * 1000 + i);
      const v = Float32Array.from(r, (x) => {
        switch (kind) {
          case 'embed':
            return gemma ? x / Math.sqrt(h) : x * 0.5;
          case 'matrix':
            return x / Math.sqrt(shape[1]!);
          case 'final-norm':
            return x * 0.1 + (gemma ? 3 : 4);
          case 'norm':
            return gemma ? x * 0.1 : 1 + x * 0.1;
          case 'bias':
            return x * 0.1;
        }
      });
      const b = f32ArrayToBf16(v);
      w.write(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    });
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}
