/**
 * node dist/bench/compare-logits.js <model dir> [--device=cpu] [--reference=<dir>] [--decode] [--kv-cache=f16|q8]: unicorn's
 * next-token distributions against the reference.safetensors that scripts/device/real_size.py
 * (transformers, CUDA) wrote beside the checkpoint (or in --reference, for a quantized copy of it):
 * mean and max KL(transformers || unicorn), top-1 agreement, largest logit difference. The prompt
 * goes through in one prefill batch; with --decode also one token at a time through the recorded
 * decode step (the path generation takes: int8 activations on quantized models).
 */
import * as path from 'node:path';
import { SafetensorsFile } from '../src/engine/formats/safetensors.js';
import { decodeFloats } from '../src/engine/formats/dtypes.js';
import { openRunner } from '../src/engine/generate/runner.js';
import { compareLogits } from '../src/engine/quant/quality.js';

const dir = process.argv[2];
if (dir !== undefined) {
  const refDir = process.argv.find((a) => a.startsWith('--reference='))?.slice(12) ?? dir;
  const ref = SafetensorsFile.open(path.join(refDir, 'reference.safetensors'));
  const idsBytes = ref.readAll('input_ids');
  const ids = Array.from(new Int32Array(idsBytes.buffer, idsBytes.byteOffset, idsBytes.byteLength / 4));
  const want = decodeFloats('F32', ref.readAll('logits'));
  const t0 = performance.now();
  const kv = process.argv.find((a) => a.startsWith('--kv-cache='))?.slice(11) ?? 'f16';
  if (kv !== 'f16' && kv !== 'q8') throw new Error(`--kv-cache=${kv}: f16 or q8`);
  const runner = openRunner(dir, { device: process.argv.includes('--device=cpu') ? 'cpu' : 'gpu', ctx: 256, batch: 128, text: false, kvCache: kv });
  const loadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const probe = runner.backend.probe(ids, 0);
  const fwdS = (performance.now() - t1) / 1000;
  const c = compareLogits(want, probe.logits, runner.model.spec.vocabSize);
  console.log(`${dir}: ${runner.model.spec.architecture}, ${ids.length}-token prompt, on ${runner.backend.name}, KV cache ${kv}`);
  console.log(
    `  load ${(runner.loadedBytes / 1e9).toFixed(2)} GB in ${loadS.toFixed(1)} s (${(runner.loadedBytes / 1e9 / loadS).toFixed(2)} GB/s); forward ${fwdS.toFixed(2)} s`,
  );
  const line = (what: string, c: ReturnType<typeof compareLogits>) =>
    console.log(
      `  ${what} KL(transformers || unicorn): mean ${c.meanKl.toExponential(3)}, max ${c.maxKl.toExponential(3)} · top-1 agreement ${(100 * c.top1).toFixed(1)}% (${Math.round(c.top1 * ids.length)}/${ids.length}) · largest logit difference ${c.maxDiff.toFixed(4)}`,
    );
  line('prefill', c);
  if (process.argv.includes('--decode')) {
    const n = runner.model.spec.vocabSize;
    const got = new Float32Array(ids.length * n);
    for (const [i, id] of ids.entries()) got.set(runner.backend.step([id], i, { kind: 'logits' }).logits!, i * n);
    line('decode ', compareLogits(want, got, n));
  }
  runner.close();
}
