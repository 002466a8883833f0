/**
 * Gemma 3 (text model; the vision tower of multimodal checkpoints is never read).
 *
 * Differences from a Llama-style decoder, all visible below: RMSNorm multiplies by (1 + weight);
 * four norms per layer (before and after attention, before and after the MLP); RMSNorm on every
 * query and key head; scores scaled by query_pre_attn_scalar^-1/2; local layers with a sliding
 * window and their own rope theta, global layers with theta and scaling of their own (both in the
 * layer's spec); a GELU-tanh gated MLP; embeddings scaled by sqrt(hidden); logits tied to the
 * embedding and softcapped when configured. The (1 + weight), scaling and softcaps come from the
 * ModelSpec and are applied by the backend's steps.
 */
import type { Architecture, Forward } from './forward.js';

export const gemma3: Architecture = {
  layer(f: Forward, i: number): void {
    const { numHeads, numKvHeads } = f.spec;
    const L = `layers.${i}.`;
    // Attention block.
    f.norm('x', `${L}input_layernorm.weight`, 'h');
    f.linear('h', `${L}self_attn.q_proj.weight`, 'q');
    f.linear('h', `${L}self_attn.k_proj.weight`, 'k');
    f.linear('h', `${L}self_attn.v_proj.weight`, 'v');
    f.headNorm('q', `${L}self_attn.q_norm.weight`, numHeads);
    f.headNorm('k', `${L}self_attn.k_norm.weight`, numKvHeads);
    f.ropeAndCache(i);
    f.attention(i, 'a');
    f.linear('a', `${L}self_attn.o_proj.weight`, 'h');
    f.addNorm('x', 'h', `${L}post_attention_layernorm.weight`);
    // MLP block.
    f.norm('x', `${L}pre_feedforward_layernorm.weight`, 'h');
    f.gateUp('h', `${L}mlp.gate_proj.weight`, `${L}mlp.up_proj.weight`, 'gelu_tanh');
    f.linear('g', `${L}mlp.down_proj.weight`, 'h');
    f.addNorm('x', 'h', `${L}post_feedforward_layernorm.weight`);
  },
  head(f: Forward): void {
    f.norm('x', 'norm.weight', 'h');
    f.logits('h');
  },
};
