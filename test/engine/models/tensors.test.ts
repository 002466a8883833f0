import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError } from '../../../src/engine/errors.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { writeSafetensors } from '../../../src/engine/formats/safetensors-writer.js';
import { memoryPlan, kvCacheBytes, parameterCount, weightBytes } from '../../../src/engine/models/memory.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { parseModelSpec } from '../../../src/engine/models/spec.js';
import { classifyName, expectedTensors } from '../../../src/engine/models/tensors.js';
import { FIXTURES, MODEL_FIXTURES, modelFixture, scratchDir } from '../../support/paths.js';

describe('tensor names', () => {
  test('all three checkpoint layouts map to one canonical name', () => {
    for (const n of ['language_model.model.layers.3.mlp.up_proj.weight', 'model.language_model.layers.3.mlp.up_proj.weight', 'model.layers.3.mlp.up_proj.weight']) {
      assert.deepEqual(classifyName(n), { kind: 'model', canonical: 'layers.3.mlp.up_proj.weight' });
    }
    assert.deepEqual(classifyName('language_model.lm_head.weight'), { kind: 'model', canonical: 'lm_head.weight' });
    assert.deepEqual(classifyName('vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight'), { kind: 'skipped', reason: 'vision' });
    assert.deepEqual(classifyName('model.multi_modal_projector.mm_input_projection_weight'), { kind: 'skipped', reason: 'vision' });
    assert.deepEqual(classifyName('model.layers.0.self_attn.rotary_emb.inv_freq'), { kind: 'skipped', reason: 'derived' });
    assert.equal(classifyName('transformer.h.0.attn.weight'), undefined);
  });

  for (const name of MODEL_FIXTURES) {
    test(`the ${name} fixture binds: every tensor found with its shape`, () => {
      const m = openModel(modelFixture(name));
      assert.equal(m.bound.tensors.size, expectedTensors(m.spec).size);
      if (name === 'gemma3-mm') {
        assert.ok(m.bound.skipped.length > 10 && m.bound.skipped.every((s) => s.reason === 'vision'));
        assert.ok([...m.bound.tensors.keys()].every((k) => !k.includes('vision')));
      } else {
        assert.deepEqual(m.bound.skipped, []);
      }
      m.checkpoint.close();
    });
  }
});

describe('a checkpoint that does not match its config', () => {
  /** Copies the qwen2 fixture with one change to its tensors. */
  function variant(edit: (ts: { name: string; dtype: 'F32' | 'BF16' | 'I8'; shape: number[]; data: Uint8Array }[]) => void): string {
    const dir = scratchDir('variant');
    const src = SafetensorsFile.open(path.join(modelFixture('qwen2'), 'model.safetensors'));
    const ts = src.tensors.map((t) => ({ name: t.name, dtype: t.dtype as 'BF16', shape: [...t.shape], data: src.readAll(t.name) }));
    src.close();
    edit(ts);
    writeSafetensors(path.join(dir, 'model.safetensors'), ts);
    fs.copyFileSync(path.join(modelFixture('qwen2'), 'config.json'), path.join(dir, 'config.json'));
    return dir;
  }
  const cases: [string, Parameters<typeof variant>[0], RegExp][] = [
    ['a misshaped tensor', (ts) => { const t = ts.find((x) => x.name === 'model.layers.1.self_attn.k_proj.weight')!; t.shape = [16, 128]; }, /model.layers.1.self_attn.k_proj.weight has shape \[16, 128\], but the config needs \[32, 64\]/],
    ['a missing tensor', (ts) => { ts.splice(ts.findIndex((x) => x.name === 'model.layers.2.self_attn.q_proj.bias'), 1); }, /1 tensor\(s\) missing, e.g. layers.2.self_attn.q_proj.bias with shape \[64\]/],
    ['an unexpected tensor', (ts) => { ts.push({ name: 'model.layers.0.self_attn.o_proj.bias', dtype: 'BF16', shape: [64], data: new Uint8Array(128) }); }, /1 tensor\(s\) that a Qwen2ForCausalLM does not have, e.g. model.layers.0.self_attn.o_proj.bias/],
    ['an integer weight', (ts) => { const t = ts.find((x) => x.name === 'model.norm.weight')!; t.dtype = 'I8'; t.data = t.data.slice(0, 64); }, /tensor model.norm.weight is I8; unicorn reads weights stored as F32, F16, BF16/],
  ];
  for (const [what, edit, message] of cases) {
    test(`${what} is a clear error`, () => {
      const dir = variant(edit);
      assert.throws(() => openModel(dir), (e: unknown) => e instanceof CheckpointError && message.test(e.message));
      fs.rmSync(dir, { recursive: true });
    });
  }
});

describe('memory plan', () => {
  const spec27 = parseModelSpec({ config: JSON.parse(fs.readFileSync(path.join(FIXTURES, 'configs', 'gemma3-27b-published.json'), 'utf8')) });

  test('Gemma 3 27B: ~27 B text parameters, ~54 GB in bf16', () => {
    const p = parameterCount(spec27);
    assert.ok(p > 26.5e9 && p < 27.5e9, `parameters ${p}`);
    assert.equal(weightBytes(spec27, 'bf16', 64), 2 * p);
  });

  test('quantized sizes follow the layouts: int8 ~1 byte, int4/64 ~4.5 bits per weight (the embedding INT8)', () => {
    const p = parameterCount(spec27);
    const emb = spec27.vocabSize * spec27.hiddenSize;
    const int8 = weightBytes(spec27, 'int8', 64);
    const int4 = weightBytes(spec27, 'int4', 64);
    assert.ok(int8 > p && int8 < p * 1.01, `int8 ${int8}`);
    const want = ((p - emb) * 4.5) / 8 + emb;
    assert.ok(int4 > want && int4 < want * 1.005, `int4 ${int4} vs ${want}`);
    const mixed = weightBytes(spec27, 'mixed', 64);
    assert.ok(mixed > int4 && mixed < int8);
  });

  test('KV cache: sliding layers hold only their window', () => {
    const perToken = 2 * 16 * 128 * 2; // K and V, 16 kv heads x 128, f16
    assert.equal(kvCacheBytes(spec27, 100), 62 * 100 * perToken);
    assert.equal(kvCacheBytes(spec27, 8192), (10 * 8192 + 52 * 1024) * perToken);
    const rows = memoryPlan(spec27, 8192, 64);
    assert.deepEqual(rows.map((r) => r.scheme), ['bf16', 'int8', 'int4', 'mixed']);
    for (const r of rows) assert.equal(r.total, r.weights + r.kvCache);
  });
});
