/**
 * Fusion as a pure function (fuse.ts): the named rules on the steps the architectures record, and
 * UNICORN_NO_FUSION's unfused lowering computing what the fused one does, on every fixture.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { WeightFormat } from '../../../src/engine/kernels/weight-formats.js';
import { ARCHITECTURES } from '../../../src/engine/models/architectures.js';
import { type FuseContext, type FusedStep, fuse, fusionEnabled } from '../../../src/engine/models/fuse.js';
import { GpuBackend } from '../../../src/engine/models/gpu-backend.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { actWidth, modelTensors, recordPass } from '../../../src/engine/models/steps.js';
import { loadWeights } from '../../../src/engine/models/weights.js';
import { openGpu } from '../../support/gpu.js';
import { MODEL_FIXTURES, modelFixture } from '../../support/paths.js';
import { maxDiff } from '../../support/reference.js';

const spec = (name: string) => openModel(modelFixture(name)).spec;

function context(name: string, o: Partial<FuseContext> & { fmt?: WeightFormat } = {}): FuseContext {
  const s = spec(name);
  const shapes = modelTensors(ARCHITECTURES[s.family], s);
  return {
    spec: s, tokens: 1, int8Activations: true, maxQuantRow: 8192, fusion: true, splits: () => 4,
    dotPathForFloatX: (f) => f === 'q4',
    format: (w) => {
      const shape = w === 'lm_head.weight' && s.tieWordEmbeddings ? [s.vocabSize, s.hiddenSize] : shapes.get(w)!;
      return { format: o.fmt ?? 'q4', rows: shape[0]!, cols: shape[1]! };
    },
    ...o,
  };
}
const ops = (f: readonly FusedStep[]) => f.map((s) => s.op);

describe('fusion rules', () => {
  test('Gemma 3 decode on INT4: add-norm, head-norms-rope, and int8 activations from each producer to its consumers', () => {
    const s = spec('gemma3-text');
    const steps = recordPass(ARCHITECTURES.gemma3, s);
    const f = fuse(steps, context('gemma3-text'));
    const layer = f.slice(f.findIndex((x) => x.op === 'norm'), f.findIndex((x) => x.op === 'norm') + 11);
    assert.deepEqual(ops(layer), ['norm', 'linear', 'linear', 'linear', 'ropeStore', 'attention', 'linear', 'addNorm', 'gateUp', 'linear', 'addNorm']);
    const [norm, q, k, v, rope, attn, o, post, gate, down] = layer as any[];
    assert.equal(norm.int8, true, 'the norm writes int8 activations for q, k, v');
    for (const p of [q, k, v]) assert.deepEqual(p.x8, { slot: 'in' });
    assert.deepEqual(rope.norms, { q: 'layers.0.self_attn.q_norm.weight', k: 'layers.0.self_attn.k_norm.weight' }, 'head-norms-rope');
    assert.equal(attn.int8, true, 'the combine pass writes o_proj\'s int8 input (head_dim 32, 4 splits)');
    assert.deepEqual(o.x8, { slot: 'in' });
    assert.deepEqual(post.next, { weight: 'layers.0.pre_feedforward_layernorm.weight', out: 'h' }, 'add-norm: the post-norm and the next norm in one');
    assert.equal(post.int8, true);
    assert.deepEqual(gate.x8, { slot: 'in' });
    assert.equal(gate.int8, true, 'the gated MLP writes down_proj\'s int8 input');
    assert.deepEqual(down.x8, { slot: 'out' });
    // 14 recorded steps a layer; 4 fold away: the head norms into rope, the pre-MLP norm into the
    // post-attention add, the next layer's input norm (or the final norm) into the post-MLP add.
    assert.equal(steps.length - f.length, 4 * s.numLayers);
  });
  test('without a producer (Llama, INT4): the first projection of an activation quantizes it, the next ones reuse it; INT8 takes float input', () => {
    const f = fuse(recordPass(ARCHITECTURES.llama, spec('llama')), context('llama', { splits: () => 1 }));
    const o = f.find((x) => x.op === 'linearAdd' && x.weight.endsWith('o_proj.weight')) as { x8?: unknown };
    assert.equal(o.x8, 'quantize', 'one attention split: no combine pass to write it');
    const q8 = fuse(recordPass(ARCHITECTURES.llama, spec('llama')), context('llama', { splits: () => 1, fmt: 'q8' }));
    assert.equal((q8.find((x) => x.op === 'linearAdd') as { x8?: unknown }).x8, undefined);
  });
  test('prefill: no int8 activations; bf16 or no integer dot: none either; the structural rules still apply', () => {
    for (const ctx of [{ tokens: 24 }, { int8Activations: false, fmt: 'bf16' as const }]) {
      const f = fuse(recordPass(ARCHITECTURES.gemma3, spec('gemma3-text')), context('gemma3-text', ctx));
      assert.ok(f.every((x) => !('int8' in x) && !('x8' in x)), JSON.stringify(ctx));
      assert.ok(f.some((x) => x.op === 'addNorm' && x.next !== undefined) && f.some((x) => x.op === 'ropeStore' && x.norms !== undefined));
    }
  });
  test('UNICORN_NO_FUSION: every recorded step as it is (head norms as their own dispatches), no int8 activations but quantize_x', () => {
    assert.equal(fusionEnabled('1'), false);
    assert.equal(fusionEnabled(undefined), true);
    const steps = recordPass(ARCHITECTURES.gemma3, spec('gemma3-text'));
    const f = fuse(steps, context('gemma3-text', { fusion: false }));
    assert.equal(f.length, steps.length - spec('gemma3-text').numLayers, 'only the two head norms of a layer go together (one barrier)');
    assert.ok(f.every((x) => !('int8' in x) && !(x.op === 'addNorm' && x.next !== undefined) && !(x.op === 'ropeStore' && x.norms !== undefined)));
    assert.ok(f.filter((x) => 'x8' in x).every((x) => (x as { x8: unknown }).x8 === 'quantize'));
  });
  test('the step list names every tensor the pass reads, with its shape', () => {
    const s = spec('qwen2');
    const t = modelTensors(ARCHITECTURES.qwen2, s);
    assert.deepEqual(t.get('layers.1.self_attn.k_proj.bias'), [actWidth(s, 'k')]);
    assert.deepEqual(t.get('layers.2.mlp.down_proj.weight'), [s.hiddenSize, s.intermediateSize]);
    assert.equal(t.has('lm_head.weight'), !s.tieWordEmbeddings);
    assert.deepEqual([...t.keys()].slice(0, 3), ['embed_tokens.weight', 'layers.0.input_layernorm.weight', 'layers.0.self_attn.q_proj.weight']);
  });
});

describe('fused and unfused lowering compute the same', () => {
  const gpu = openGpu();
  after(() => gpu.device.destroy());
  const REL = 4e-3; // the f16 KV cache's tolerance, as the forward tests'
  for (const name of MODEL_FIXTURES) {
    test(`${name}: prefill and decode logits within the f16 tolerance`, () => {
      const model = openModel(modelFixture(name));
      const weights = loadWeights(model, gpu.alloc, gpu.cmds);
      const [fused, plain] = [true, false].map((fusion) => new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, { ctx: 64, batch: 32, fusion }));
      try {
        // Gemma 3 fuses norms into neighbours; Llama and Qwen 2 in bf16 have nothing to fuse.
        const [p, f] = [plain!, fused!].map((b) => b.plan(1, { kind: 'argmax' }).length);
        assert.ok(name.startsWith('gemma3') ? p! > f! : p === f, `${name}: ${p} unfused lines, ${f} fused`);
        const ids = [5, 17, 300, 42, 99, 7, 250, 128, 64, 3, 11, 200];
        const run = (b: GpuBackend) => [b.step(ids, 0, { kind: 'logits' }).logits!, ...[1, 2, 3, 4].map((t, i) => b.step([t * 37], ids.length + i, { kind: 'logits' }).logits!)];
        const [a, b] = [run(fused!), run(plain!)];
        a.forEach((l, i) => {
          const { diff, scale } = maxDiff(l, b[i]!);
          assert.ok(diff <= REL * scale, `${name} step ${i}: ${diff.toExponential(2)} over ${REL} x ${scale.toFixed(2)}`);
        });
      } finally {
        fused!.dispose();
        plain!.dispose();
        weights.free();
        model.checkpoint.close();
      }
    });
  }
});
