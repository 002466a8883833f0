/** `unicorn bench`: the report's numbers hang together (roofline, tokens, per-kernel profile); bad sizes are refused. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { BenchResult } from '../../src/engine/bench.js';
import { kvCacheBytes } from '../../src/engine/models/memory.js';
import { openModel } from '../../src/engine/models/model-dir.js';
import { BIN, modelFixture } from '../support/paths.js';

const env = { ...process.env, UNICORN_VALIDATION: '0' };
const unicorn = (args: string[]) => spawnSync(process.execPath, [BIN, 'bench', ...args], { encoding: 'utf8', env });

test('bench --json --profile on a fixture: prefill and decode counts, the roofline from the copy rate and the weights, one step per kernel', () => {
  const model = modelFixture('llama');
  const r = unicorn([model, '-p', '16', '-n', '8', '--json', '--profile']);
  assert.equal(r.status, 0, r.stderr);
  const b = JSON.parse(r.stdout) as BenchResult;
  assert.equal(b.prefill.tokens, 16);
  assert.equal(b.decode.tokens, 7, 'the first token comes from the prefill');
  const m = openModel(model);
  const weights = [...m.bound.tensors].reduce((a, [name, t]) => a + (name === 'embed_tokens.weight' && !m.spec.tieWordEmbeddings ? 0 : t.byteLength), 0);
  m.checkpoint.close();
  assert.equal(b.bytesPerToken, weights);
  assert.equal(b.kvCache, 'f16', 'the default cache type, stated');
  assert.equal(b.ctx, 16 + 8 + 1);
  assert.equal(b.kvCacheBytes, kvCacheBytes(m.spec, b.ctx, 'f16'));
  assert.ok(b.copyGBs > 0);
  assert.ok(Math.abs(b.rooflineTokensPerSecond - (b.copyGBs * 1e9) / b.bytesPerToken) < 1e-6 * b.rooflineTokensPerSecond);
  assert.ok(Math.abs(b.decode.ofRoofline - b.decode.tokensPerSecond / b.rooflineTokensPerSecond) < 1e-9);
  assert.ok(b.decode.tokensPerSecond > 0 && b.decode.sampledTokensPerSecond > 0 && b.prefill.tokensPerSecond > 0);
  const step = b.step!;
  assert.equal(
    step.kernels.reduce((a, k) => a + k.count, 0),
    step.dispatches,
  );
  assert.ok(Math.abs(step.kernels.reduce((a, k) => a + k.share, 0) - 1) < 1e-9);
  const names = step.kernels.map((k) => k.kernel);
  for (const k of ['matvec_bf16', 'rmsnorm', 'argmax']) assert.ok(names.includes(k), `${k} in ${names.join(', ')}`);
  // Decode attention: the heads of a kv head folded into one workgroup where the device's check passes (lavapipe's does), else per head.
  assert.ok(names.includes('attention_decode') || names.includes('attention'), `attention in ${names.join(', ')}`);
  // A layer's projections: q, k, v, o, gate+up (fused), down; plus the output head.
  assert.equal(step.kernels.find((k) => k.kernel === 'matvec_bf16')!.count, 6 * m.spec.numLayers + 1);
});

test("bench: the text report, and sizes beyond the model's positions refused with what fits", () => {
  const r = unicorn([modelFixture('llama'), '-p', '8', '-n', '4']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^model {5}.*LlamaForCausalLM, [\d.]+ MB read per decode token$/m);
  assert.match(r.stdout, /-> roofline [\d,]+ tok\/s/);
  assert.match(r.stdout, /^matmul {4}(direct \(a CPU driver\)|cooperative matrices \d+x\d+x\d+ f16 -> f32, .*|tiled.*)$/m);
  assert.match(r.stdout, /^attention .+\nkv cache  f16: [\d.]+ MB at context 13\nprefill /m, 'the KV cache type beside the attention kernel');
  assert.match(r.stdout, /^decode {4}3 tokens after the first: [\d,.]+ tok\/s greedy = [\d,.]+ GB\/s of weights, \d+% of the roofline$/m);
  const bad = unicorn([modelFixture('llama'), '-p', '2000', '-n', '8']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /need a context of 2009; this model takes up to 512 positions/);
});

test('bench --kv-cache q8 runs with the q8 cache and says so, in the report and its JSON', () => {
  const model = modelFixture('gemma3-text'); // head_dim 32: takes q8
  const j = unicorn([model, '-p', '8', '-n', '4', '--kv-cache', 'q8', '--json']);
  assert.equal(j.status, 0, j.stderr);
  const b = JSON.parse(j.stdout) as BenchResult;
  assert.equal(b.kvCache, 'q8');
  const m = openModel(model);
  assert.equal(b.kvCacheBytes, kvCacheBytes(m.spec, 13, 'q8'));
  assert.ok(b.kvCacheBytes < kvCacheBytes(m.spec, 13, 'f16'));
  m.checkpoint.close();
  assert.ok(b.decode.tokensPerSecond > 0);
  const text = unicorn([model, '-p', '8', '-n', '4', '--kv-cache', 'q8']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^kv cache  q8 \(int8, blocks of 32 with an f32 scale\): [\d.]+ MB at context 13$/m);
});
