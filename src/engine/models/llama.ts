/**
 * Llama (2, 3, 3.1, 3.2): a pre-norm decoder. RMSNorm (plain weight), rope with one theta (Llama 3.1
 * scales its low frequencies: the layer spec's rope carries the llama3 scaling), grouped-query
 * attention, SiLU gated MLP, an untied output projection in the 8B and larger models.
 */
import type { Architecture, Forward } from './forward.js';

export const llama: Architecture = {
  layer(f: Forward, i: number): void {
    const L = `layers.${i}.`;
    f.norm('x', `${L}input_layernorm.weight`, 'h');
    f.linear('h', `${L}self_attn.q_proj.weight`, 'q');
    f.linear('h', `${L}self_attn.k_proj.weight`, 'k');
    f.linear('h', `${L}self_attn.v_proj.weight`, 'v');
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
