import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/engine/errors.js';
import { readModelSpec } from '../../../src/engine/models/model-dir.js';
import { type ModelSpec, parseModelSpec } from '../../../src/engine/models/spec.js';
import { FIXTURES, modelFixture, scratchDir } from '../../support/paths.js';

const published = (name: string): unknown => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'configs', `${name}.json`), 'utf8'));
const globals = (s: ModelSpec) => s.layers.filter((l) => l.attention === 'full').map((l) => l.index);

describe('published (transformers 4.5x) configs', () => {
  test('Gemma 3 27B: sparse text_config filled from the era\'s defaults', () => {
    const s = parseModelSpec({ config: published('gemma3-27b-published') });
    assert.equal(s.family, 'gemma3');
    assert.equal(s.architecture, 'Gemma3ForConditionalGeneration');
    assert.equal(s.multimodal, true);
    assert.deepEqual(
      [s.hiddenSize, s.intermediateSize, s.numLayers, s.numHeads, s.numKvHeads, s.headDim, s.vocabSize],
      [5376, 21504, 62, 32, 16, 128, 262208],
    );
    assert.equal(s.queryPreAttnScalar, 168);
    assert.equal(s.slidingWindow, 1024);
    // Every 6th layer is global: 5, 11, ..., 59.
    assert.deepEqual(globals(s), [5, 11, 17, 23, 29, 35, 41, 47, 53, 59]);
    const g = s.layers[5]!;
    const l = s.layers[0]!;
    assert.deepEqual(g.rope, { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } });
    assert.equal(g.window, null);
    assert.deepEqual(l.rope, { theta: 10_000, scaling: { kind: 'none' } });
    assert.equal(l.window, 1024);
    assert.equal(s.rmsNormEps, 1e-6);
    assert.equal(s.activation, 'gelu_tanh');
    assert.equal(s.tieWordEmbeddings, true);
    assert.equal(s.normWeightOffset, 1);
    assert.equal(s.embeddingScale, Math.sqrt(5376));
    assert.equal(s.attnLogitSoftcap, null);
    assert.equal(s.finalLogitSoftcap, null);
    assert.equal(s.maxPositionEmbeddings, 131072);
    assert.deepEqual(s.eosTokenIds, [1, 106]);
    assert.equal(s.bosTokenId, 2);
    assert.equal(s.qkNorm, true);
    assert.equal(s.qkvBias, false);
  });

  test('older files saying "type" instead of "rope_type" inside rope_scaling', () => {
    const cfg = published('gemma3-27b-published') as { text_config: Record<string, unknown> };
    cfg.text_config['rope_scaling'] = { factor: 8.0, type: 'linear' };
    assert.deepEqual(parseModelSpec({ config: cfg }).layers[5]!.rope.scaling, { kind: 'linear', factor: 8 });
  });

  test('Gemma 3 1B text-only: no rope scaling, window 512', () => {
    const s = parseModelSpec({ config: published('gemma3-1b-published') });
    assert.equal(s.multimodal, false);
    assert.deepEqual([s.hiddenSize, s.numLayers, s.numHeads, s.numKvHeads, s.headDim, s.vocabSize, s.slidingWindow], [1152, 26, 4, 1, 256, 262144, 512]);
    assert.deepEqual(s.layers[5]!.rope, { theta: 1_000_000, scaling: { kind: 'none' } });
    assert.deepEqual(globals(s), [5, 11, 17, 23]);
  });

  test('Qwen 2.5 7B: q/k/v biases, untied, no sliding window', () => {
    const s = parseModelSpec({ config: published('qwen2.5-7b-published') });
    assert.equal(s.family, 'qwen2');
    assert.deepEqual([s.hiddenSize, s.intermediateSize, s.numLayers, s.numHeads, s.numKvHeads, s.headDim, s.vocabSize], [3584, 18944, 28, 28, 4, 128, 152064]);
    assert.equal(s.qkvBias, true);
    assert.equal(s.tieWordEmbeddings, false);
    assert.equal(s.slidingWindow, null);
    assert.deepEqual(globals(s).length, 28);
    assert.deepEqual(s.layers[0]!.rope, { theta: 1_000_000, scaling: { kind: 'none' } });
    assert.equal(s.queryPreAttnScalar, 128);
    assert.equal(s.embeddingScale, 1);
    assert.equal(s.normWeightOffset, 0);
    assert.equal(s.activation, 'silu');
  });

  test('Llama 3.1 8B: llama3 rope scaling, three eos ids', () => {
    const s = parseModelSpec({ config: published('llama3.1-8b-published') });
    assert.deepEqual([s.hiddenSize, s.numLayers, s.numHeads, s.numKvHeads, s.headDim, s.vocabSize], [4096, 32, 32, 8, 128, 128256]);
    assert.deepEqual(s.layers[31]!.rope, {
      theta: 500_000,
      scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    });
    assert.deepEqual(s.eosTokenIds, [128001, 128008, 128009]);
    assert.equal(s.rmsNormEps, 1e-5);
  });
});

describe('transformers 5 configs (the fixtures)', () => {
  test('gemma3-text: layer_types, per-type rope_parameters, softcapping', () => {
    const s = readModelSpec(modelFixture('gemma3-text'));
    assert.equal(s.architecture, 'Gemma3ForCausalLM');
    assert.deepEqual([s.hiddenSize, s.numLayers, s.numHeads, s.numKvHeads, s.headDim, s.queryPreAttnScalar, s.slidingWindow], [64, 8, 4, 2, 32, 24, 8]);
    assert.notEqual(s.headDim, s.hiddenSize / s.numHeads);
    assert.deepEqual(globals(s), [5]);
    assert.deepEqual(s.layers[5]!.rope, { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } });
    assert.deepEqual(s.layers[6]!.rope, { theta: 10_000, scaling: { kind: 'none' } });
    assert.equal(s.attnLogitSoftcap, 50);
    assert.equal(s.finalLogitSoftcap, 30);
  });

  test('gemma3-mm: nested text_config, eos from generation_config', () => {
    const s = readModelSpec(modelFixture('gemma3-mm'));
    assert.equal(s.multimodal, true);
    assert.deepEqual([s.hiddenSize, s.numLayers, s.numKvHeads, s.slidingWindow], [48, 7, 1, 6]);
    assert.deepEqual(s.eosTokenIds, [1, 106]);
  });

  test('qwen2 and llama: one rope_parameters object', () => {
    const q = readModelSpec(modelFixture('qwen2'));
    assert.deepEqual(q.layers[0]!.rope, { theta: 1_000_000, scaling: { kind: 'none' } });
    assert.equal(q.tieWordEmbeddings, true);
    const l = readModelSpec(modelFixture('llama'));
    assert.deepEqual(l.layers[0]!.rope.scaling, { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
    assert.equal(l.tieWordEmbeddings, false);
  });

  test('the two formats of the same model give the same spec', () => {
    const old = parseModelSpec({ config: published('llama3.1-8b-published') });
    const cfg = published('llama3.1-8b-published') as Record<string, unknown>;
    const { rope_scaling: scaling, rope_theta: theta, ...rest } = cfg;
    const v5 = parseModelSpec({ config: { ...rest, rope_parameters: { ...(scaling as object), rope_theta: theta } } });
    assert.deepEqual(v5, old);
  });
});

describe('errors', () => {
  const base = () => published('llama3.1-8b-published') as Record<string, unknown>;
  const cases: [string, () => unknown, RegExp][] = [
    ['an unknown architecture', () => ({ ...base(), architectures: ['MistralForCausalLM'], model_type: 'mistral' }), /unknown architecture \(architectures \["MistralForCausalLM"\], model_type "mistral"\); unicorn runs Gemma3ForConditionalGeneration/],
    ['no architecture at all', () => ({ hidden_size: 4 }), /no architectures or model_type given/],
    ['an unsupported rope type', () => ({ ...base(), rope_scaling: { rope_type: 'yarn', factor: 4 } }), /rope type "yarn", which unicorn does not support yet/],
    ['heads not a multiple of kv heads', () => ({ ...base(), num_key_value_heads: 5 }), /not a multiple of num_key_value_heads \(5\)/],
    ['a non-integer layer count', () => ({ ...base(), num_hidden_layers: 2.5 }), /'num_hidden_layers' should be an integer >= 1, found 2.5/],
    ['layer_types of the wrong length', () => ({ ...base(), layer_types: ['full_attention'] }), /'layer_types' should list 32 layers, found 1/],
    ['an unknown activation', () => ({ ...base(), hidden_act: 'relu2' }), /activation "relu2" is not supported/],
    ['a config that is not an object', () => [1], /is not a JSON object/],
  ];
  for (const [what, make, message] of cases) {
    test(`rejects ${what}`, () => {
      assert.throws(() => parseModelSpec({ config: make(), source: 'x/config.json' }), (e: unknown) => e instanceof ConfigError && message.test(e.message));
    });
  }

  test('a missing or broken config.json names the file', () => {
    const dir = scratchDir('cfg');
    assert.throws(() => readModelSpec(dir), /config.json: no such file or directory/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": [');
    assert.throws(() => readModelSpec(dir), /config.json: is not valid JSON/);
    fs.rmSync(dir, { recursive: true });
  });

  test('chat templates come from tokenizer_config.json or chat_template.jinja', () => {
    const cfg = published('gemma3-1b-published');
    assert.equal(parseModelSpec({ config: cfg, tokenizerConfig: { chat_template: '{{ x }}' } }).chatTemplate, '{{ x }}');
    assert.equal(parseModelSpec({ config: cfg, tokenizerConfig: { chat_template: [{ name: 'tool_use', template: 'a' }, { name: 'default', template: 'b' }] } }).chatTemplate, 'b');
    assert.equal(parseModelSpec({ config: cfg, chatTemplateFile: 'j' }).chatTemplate, 'j');
    assert.equal(parseModelSpec({ config: cfg }).chatTemplate, null);
  });
});
