import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { SafetensorsWriter } from '../../src/engine/formats/safetensors-writer.js';
import { inspectTarget } from '../../src/engine/inspect.js';
import { kvCacheBytes, memoryPlan } from '../../src/engine/models/memory.js';
import { readModelSpec } from '../../src/engine/models/model-dir.js';
import { parseModelSpec } from '../../src/engine/models/spec.js';
import { formatBytes } from '../../src/ui/format.js';
import { expectedTensors } from '../../src/engine/models/tensors.js';
import { BIN, FIXTURES, MODEL_FIXTURES, modelFixture, scratchDir } from '../support/paths.js';
import { writeSparseCheckpoint } from '../support/sparse-checkpoint.js';

function unicorn(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const ARCH: Record<string, string> = {
  'gemma3-text': 'Gemma3ForCausalLM',
  'gemma3-mm': 'Gemma3ForConditionalGeneration',
  qwen2: 'Qwen2ForCausalLM',
  llama: 'LlamaForCausalLM',
};

describe('unicorn inspect', () => {
  for (const name of MODEL_FIXTURES) {
    test(`prints the architecture of the ${name} fixture`, () => {
      const r = unicorn('inspect', modelFixture(name));
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`architecture +${ARCH[name]}`));
      assert.match(r.out, /memory at --ctx 4096/);
      // The KV cache both ways where the heads take q8 (head_dim a multiple of 32), f16 alone otherwise.
      if (name === 'gemma3-text')
        assert.match(r.out, /\n {2}scheme +weights +kv cache f16 +total f16 +kv cache q8 +total q8\n {2}bf16 /, 'the memory table, one row a line');
      else assert.match(r.out, /\n {2}scheme +weights +kv cache f16 +total f16\n {2}bf16 /, 'the memory table, one row a line');
      assert.doesNotMatch(r.out, /\\n/, 'no escaped line breaks');
      if (name === 'gemma3-mm') assert.match(r.out, /vision tower skipped, 34 tensors, [\d.]+ KB never read/);
      else assert.doesNotMatch(r.out, /vision/);
    });
  }

  test('the memory plan shows the KV cache as f16 and as q8, the same figures as --json and as the engine computes', () => {
    const model = modelFixture('gemma3-text');
    const spec = readModelSpec(model);
    const j = JSON.parse(unicorn('inspect', model, '--json', '--ctx', '200').out);
    assert.deepEqual(j.model.memory.rows, memoryPlan(spec, 200, 64), 'rows: f16, as before');
    assert.deepEqual(j.model.memory.rowsQ8, memoryPlan(spec, 200, 64, 'q8'));
    assert.equal(j.model.kvCacheBytesPerToken, kvCacheBytes(spec, 1));
    assert.equal(j.model.kvCacheBytesPerTokenQ8, kvCacheBytes(spec, 1, 'q8'));
    assert.ok(j.model.kvCacheBytesPerTokenQ8 < j.model.kvCacheBytesPerToken);
    const text = unicorn('inspect', model, '--ctx', '200').out;
    assert.match(text, /memory at --ctx 200 \(KV cache f16 and q8; /);
    for (const [i, row] of memoryPlan(spec, 200, 64).entries()) {
      const q8 = memoryPlan(spec, 200, 64, 'q8')[i]!;
      const cells = [row.scheme, formatBytes(row.weights), formatBytes(row.kvCache), formatBytes(row.total), formatBytes(q8.kvCache), formatBytes(q8.total)];
      assert.match(text, new RegExp(`\\n  ${cells.map((c) => c.replace('.', '\\.')).join(' +')}\\n`), row.scheme);
    }
    // head_dim 16: no q8, and why.
    const llama = unicorn('inspect', modelFixture('llama'));
    assert.match(llama.out, /KV cache f16; no q8: this model's head_dim 16 is not a multiple of 32/);
    assert.doesNotMatch(llama.out, /kv cache q8/);
    const lj = JSON.parse(unicorn('inspect', modelFixture('llama'), '--json').out);
    assert.equal(lj.model.memory.rowsQ8, null);
    assert.equal(lj.model.kvCacheBytesPerTokenQ8, null);
    assert.match(lj.model.memory.q8Refusal, /head_dim 16/);
  });

  test('--json carries the spec, the plan and the skipped tensors', () => {
    const r = unicorn('inspect', modelFixture('gemma3-mm'), '--json', '--ctx', '128');
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.model.spec.architecture, 'Gemma3ForConditionalGeneration');
    assert.equal(j.model.memory.ctx, 128);
    assert.ok(j.model.skipped.every((s: { reason: string }) => s.reason === 'vision'));
    assert.equal(j.tensors, undefined);
  });

  test('--tensors lists tensors with their status; --filter narrows them', () => {
    const r = unicorn('inspect', modelFixture('gemma3-mm'), '--filter', '^language_model.*layers\\.0\\.self_attn\\.q_');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /language_model\.model\.layers\.0\.self_attn\.q_norm\.weight +BF16 +\[16\]/);
    assert.match(r.out, /\n2 of \d+ tensors/);
    const all = unicorn('inspect', modelFixture('gemma3-mm'), '--tensors');
    assert.match(all.out, /vision_tower\.\S+ +BF16 .* skipped \(vision\)/);
  });

  test('a bare .safetensors file without config.json shows its tensors only', () => {
    const r = unicorn('inspect', path.join(FIXTURES, 'dtypes.safetensors'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /unknown: no config.json beside the weights/);
    assert.match(r.out, /metadata .*made_by=python safetensors/);
  });

  test('user errors are one line on stderr with a non-zero exit, no stack trace', () => {
    for (const args of [
      ['inspect', '/no/such/model'],
      ['inspect', FIXTURES],
      ['inspect', modelFixture('llama'), '--filter', '('],
    ]) {
      const r = unicorn(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /^unicorn: /);
      assert.doesNotMatch(r.err, /\n\s+at /);
    }
    const unknown = unicorn('frobnicate');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
    const withDebug = unicorn('--debug', 'inspect', '/no/such/model');
    assert.match(withDebug.err, /\n\s+at /);
  });

  test('tensor names and metadata with escape sequences are printed as visible escapes, in the table and in --json', () => {
    const file = path.join(scratchDir('inspect'), 'evil.safetensors');
    const w = new SafetensorsWriter(file, [{ name: 'w\u001b[2J\u001b]0;owned\u0007', dtype: 'F32', shape: [2] }], { note: 'x\u009b31m\nforged: line' });
    w.write(new Uint8Array(8));
    w.commit();
    for (const args of [['--tensors'], ['--tensors', '--json']]) {
      const r = unicorn('inspect', file, ...args);
      assert.equal(r.code, 0, r.err);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(r.out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, args.join(' '));
      if (args.length === 1) {
        assert.match(r.out, /w\\x1b\[2J\\x1b\]0;owned\\x07/);
        assert.match(r.out, /note=x\\x9b31m\\nforged: line/);
      } else assert.match(r.out, /\\u009b31m/);
    }
  });

  test('--version and --help', () => {
    assert.match(unicorn('--version').out, /^\d+\.\d+\.\d+\n$/);
    assert.match(unicorn('inspect', '--help').out, /--ctx <n>/);
  });

  test('a full-size sharded Gemma 3 27B (sparse files) is inspected from headers alone', (t) => {
    const dir = scratchDir('g27');
    const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'configs', 'gemma3-27b-published.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const spec = parseModelSpec({ config });
    const text = [...expectedTensors(spec)].map(([name, shape]) => ({ name: `language_model.model.${name}`, dtype: 'BF16' as const, shape }));
    const vision = [{ name: 'vision_tower.vision_model.embeddings.patch_embedding.weight', dtype: 'BF16' as const, shape: [1152, 3, 14, 14] }];
    const shards = writeSparseCheckpoint(dir, [...text, ...vision], 5e9);
    const start = performance.now();
    const report = inspectTarget(dir, { ctx: 8192, group: 64 });
    const ms = performance.now() - start;
    t.diagnostic(`inspected ${shards} shards, ${(report.totalBytes / 1e9).toFixed(1)} GB of tensors, in ${ms.toFixed(0)} ms`);
    assert.equal(report.files.length, shards);
    assert.ok(report.totalBytes > 54e9 && report.totalBytes < 55e9, `${report.totalBytes}`);
    assert.equal(report.model?.spec.numLayers, 62);
    assert.equal(report.model?.skipped.length, 1);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('unicorn inspect --plan', () => {
  test("one layer's fused steps and dispatches, for decode and prefill, as the engine records them; UNICORN_NO_FUSION=1 shows the unfused ones", () => {
    // The bundled model takes at most 1024 positions: --plan uses the model's own default context.
    const bundled = spawnSync(process.execPath, [BIN, 'inspect', '--plan', path.join(path.dirname(BIN), '..', 'models', 'kjv-tiny')], { encoding: 'utf8' });
    assert.equal(bundled.status, 0, bundled.stderr);
    const fused = spawnSync(process.execPath, [BIN, 'inspect', '--plan', modelFixture('gemma3-text'), '--ctx', '64'], {
      encoding: 'utf8',
      env: { ...process.env, UNICORN_NO_FUSION: '' },
    });
    assert.equal(fused.status, 0, fused.stderr);
    assert.match(fused.stdout, /decode step \(1 token, greedy\): \d+ dispatches, \d+ barriers in the whole pass; layer 0:/);
    assert.match(fused.stdout, /prefill batch \(64 tokens\)/);
    assert.match(fused.stdout, /; KV cache f16; recorded, not run\)/);
    assert.match(fused.stdout, /rope \+ cache store, q\/k head norms first \[head-norms-rope\]/);
    assert.match(fused.stdout, /\[add-norm\]/);
    assert.match(fused.stdout, /\n {4}rope_store spec /);
    const plain = spawnSync(process.execPath, [BIN, 'inspect', '--plan', modelFixture('gemma3-text'), '--ctx', '64'], {
      encoding: 'utf8',
      env: { ...process.env, UNICORN_NO_FUSION: '1' },
    });
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /fusion off/);
    assert.doesNotMatch(plain.stdout, /\[add-norm\]|\[head-norms-rope\]/);
    const count = (s: string) => Number(/decode step \(1 token, greedy\): (\d+) dispatches/.exec(s)![1]);
    const q8 = spawnSync(process.execPath, [BIN, 'inspect', '--plan', modelFixture('gemma3-text'), '--ctx', '64', '--kv-cache', 'q8'], { encoding: 'utf8' });
    assert.equal(q8.status, 0, q8.stderr);
    assert.match(q8.stdout, /; KV cache q8; recorded, not run\)/, 'the plan is recorded with the asked cache');
    assert.ok(count(plain.stdout) > count(fused.stdout));
  });
});
