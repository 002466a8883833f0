/**
 * Qwen 2 / Qwen 2.5: a Llama-style pre-norm decoder whose q, k and v projections carry biases.
 * RMSNorm (plain weight), rope with one theta, SiLU gated MLP; the output projection may be tied to
 * the embedding (small models) or separate.
 */
import type { Architecture, Forward } from './forward.js';

export const qwen2: Architecture = {
  layer(f: Forward, i: number): void {
    const L = `layers.${i}.`;
    f.norm('x', `${L}input_layernorm.weight`, 'h');
    f.linear('h', `${L}self_attn.q_proj.weight`, 'q', `${L}self_attn.q_proj.bias`);
    f.linear('h', `${L}self_attn.k_proj.weight`, 'k', `${L}self_attn.k_proj.bias`);
    f.linear('h', `${L}self_attn.v_proj.weight`, 'v', `${L}self_attn.v_proj.bias`);
    f.ropeAndCache(i);
    f.attention(i, 'a');
    f.linearAdd('a', `${L}self_attn.o_proj.weight`, 'x');
    f.norm('x', `${L}post_attention_layernorm.weight`, 'h');
    f.gateUp('h', `${L}mlp.gate_proj.weight`, `${L}mlp.up_proj.weight`, 'silu');
    f.linearAdd('g', `${L}mlp.down_proj.weight`, 'x');
  },
  head(f: Forward): void {
    f.norm('x', 'norm.weight', 'h');
    f.logits('h');
  },
};
