/**
 * Builds the bundled demo model from what train.py wrote on the device:
 *
 *   node dist/scripts/demo-model/build.js <trained dir> <out dir> [--scheme int8|mixed|int4]
 *
 * 1. `unicorn quantize <trained>/model <out> --scheme ...` (the real command).
 * 2. The original (bf16) and the quantized model run by unicorn on the held-out windows of
 *    reference.safetensors, against transformers' logits there: mean / max KL(transformers || unicorn)
 *    and top-1 agreement per position.
 * 3. unicorn's greedy continuations of the sample prompts from the shipped model, recorded for the
 *    test that checks them on every run (test/commands/demo-model.test.ts).
 * 4. The model card (README.md), train-report.json and build-report.json beside the weights.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFloats } from '../../src/engine/formats/dtypes.js';
import { SafetensorsFile } from '../../src/engine/formats/safetensors.js';
import { openRunner } from '../../src/engine/generate/runner.js';
import { GREEDY } from '../../src/engine/generate/sampler.js';
import { compareLogits } from '../../src/engine/quant/quality.js';

const BIN = fileURLToPath(new URL('../../../bin/unicorn', import.meta.url));
const [trained, out] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (trained === undefined || out === undefined) {
  console.error('usage: node dist/scripts/demo-model/build.js <trained dir> <out dir> [--scheme int8|mixed|int4]');
  process.exit(2);
}
const scheme = (process.argv.find((a) => a.startsWith('--scheme=')) ?? '--scheme=int8').slice('--scheme='.length);
const GREEDY_TOKENS = 48;

const q = spawnSync(process.execPath, [BIN, 'quantize', path.join(trained, 'model'), out, '--scheme', scheme, '--force', '--json'], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
if (q.status !== 0) throw new Error(`unicorn quantize failed (${q.status})`);
const { out: _where, ...quantize } = JSON.parse(q.stdout) as Record<string, unknown>;
void _where;

const ref = SafetensorsFile.open(path.join(trained, 'reference.safetensors'));
const [windows, len] = ref.tensors.find((t) => t.name === 'tokens')!.shape as [number, number];
const tokBytes = ref.readAll('tokens');
const tokens = new Int32Array(tokBytes.buffer.slice(tokBytes.byteOffset, tokBytes.byteOffset + tokBytes.byteLength));
const want = decodeFloats('F16', ref.readAll('logits'));

function against(dir: string) {
  const runner = openRunner(dir, { ctx: len, batch: len });
  try {
    const vocab = runner.model.spec.vocabSize;
    const got = new Float32Array(windows * len * vocab);
    for (let w = 0; w < windows; w++) {
      const ids = Array.from(tokens.subarray(w * len, (w + 1) * len));
      got.set(runner.backend.probe(ids, 0).logits, w * len * vocab);
    }
    const c = compareLogits(want, got, vocab);
    return {
      meanKl: +c.meanKl.toExponential(3),
      maxKl: +c.maxKl.toExponential(3),
      top1: +c.top1.toFixed(4),
      positions: c.positions,
      device: runner.backend.name,
    };
  } finally {
    runner.close();
  }
}

const original = against(path.join(trained, 'model'));
const shipped = against(out);
const train = JSON.parse(fs.readFileSync(path.join(trained, 'train-report.json'), 'utf8')) as {
  parameters: number;
  validation_loss: number;
  validation_perplexity: number;
  greedy_samples: { prompt: string; ids: number[]; greedy: number[]; text: string }[];
  training: { seconds: number; gpu: string; best_step: number; steps_run: number };
  corpus: Record<string, unknown>;
};

// unicorn's greedy continuations from the shipped files (what the test replays).
const runner = openRunner(out, { ctx: 256 });
const greedy = train.greedy_samples.map((s) => {
  runner.session.reset();
  const ids = runner.codec!.encode(s.prompt, true);
  const g = runner.session.generate(ids, { maxTokens: GREEDY_TOKENS, sampling: GREEDY, eosIds: runner.model.spec.eosTokenIds });
  const agree = g.tokens.findIndex((t, i) => t !== s.greedy[i]);
  return {
    prompt: s.prompt,
    ids,
    tokens: g.tokens,
    text: g.text,
    transformersOriginalAgreesFor: agree < 0 ? Math.min(g.tokens.length, s.greedy.length) : agree,
  };
});
const device = runner.backend.name;
runner.close();

const bytes = fs
  .readdirSync(out)
  .filter((f) => f.endsWith('.safetensors'))
  .reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0);
const report = {
  scheme,
  bytes,
  quantize,
  device,
  againstTransformers: {
    what: `transformers ${String((ref.metadata ?? {})['transformers'])} f32 logits of the bf16 original on ${windows} held-out windows of ${len} tokens`,
    original,
    shipped,
  },
  greedy,
};
fs.writeFileSync(path.join(out, 'build-report.json'), `${JSON.stringify(report, null, 1)}\n`);
fs.copyFileSync(path.join(trained, 'train-report.json'), path.join(out, 'train-report.json'));
console.log(JSON.stringify({ scheme, bytes, original, shipped, greedy: greedy.map((g) => [g.prompt + g.text, g.transformersOriginalAgreesFor]) }, null, 1));
