/**
 * node dist/bench/compare-logits.js <model dir> [--device cpu]: unicorn's next-token distributions
 * against the reference.safetensors that scripts/device/real_size.py (transformers, CUDA) wrote beside
 * the checkpoint: mean and max KL(transformers || unicorn), top-1 agreement, largest logit difference.
 */
import * as path from 'node:path';
import { SafetensorsFile } from '../src/engine/formats/safetensors.js';
import { decodeFloats } from '../src/engine/formats/dtypes.js';
import { openRunner } from '../src/engine/generate/runner.js';

export function compareLogits(want: Float32Array, got: Float32Array, vocab: number): { meanKl: number; maxKl: number; top1: number; maxDiff: number } {
  const T = want.length / vocab;
  let kl = 0;
  let maxKl = 0;
  let agree = 0;
  let maxDiff = 0;
  for (let t = 0; t < T; t++) {
    const a = want.subarray(t * vocab, (t + 1) * vocab);
    const b = got.subarray(t * vocab, (t + 1) * vocab);
    const lse = (x: Float32Array) => { let m = -Infinity; for (const v of x) m = Math.max(m, v); let s = 0; for (const v of x) s += Math.exp(v - m); return m + Math.log(s); };
    const la = lse(a);
    const lb = lse(b);
    let k = 0;
    let ia = 0;
    let ib = 0;
    for (let i = 0; i < vocab; i++) {
      const pa = a[i]! - la;
      k += Math.exp(pa) * (pa - (b[i]! - lb));
      if (a[i]! > a[ia]!) ia = i;
      if (b[i]! > b[ib]!) ib = i;
      maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    }
    kl += k;
    maxKl = Math.max(maxKl, k);
    if (ia === ib) agree++;
  }
  return { meanKl: kl / T, maxKl, top1: agree / T, maxDiff };
}

const dir = process.argv[2];
if (dir !== undefined) {
  const ref = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  const idsBytes = ref.readAll('input_ids');
  const ids = Array.from(new Int32Array(idsBytes.buffer, idsBytes.byteOffset, idsBytes.byteLength / 4));
  const want = decodeFloats('F32', ref.readAll('logits'));
  const t0 = performance.now();
  const runner = openRunner(dir, { device: process.argv.includes('--device=cpu') ? 'cpu' : 'gpu', ctx: 256, batch: 128, text: false });
  const loadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const probe = runner.backend.probe(ids, 0);
  const fwdS = (performance.now() - t1) / 1000;
  const c = compareLogits(want, probe.logits, runner.model.spec.vocabSize);
  console.log(`${dir}: ${runner.model.spec.architecture}, ${ids.length}-token prompt, on ${runner.backend.name}`);
  console.log(`  load ${(runner.loadedBytes / 1e9).toFixed(2)} GB in ${loadS.toFixed(1)} s (${(runner.loadedBytes / 1e9 / loadS).toFixed(2)} GB/s); forward ${fwdS.toFixed(2)} s`);
  console.log(`  KL(transformers || unicorn): mean ${c.meanKl.toExponential(3)}, max ${c.maxKl.toExponential(3)} · top-1 agreement ${(100 * c.top1).toFixed(1)}% (${Math.round(c.top1 * ids.length)}/${ids.length}) · largest logit difference ${c.maxDiff.toFixed(4)}`);
  runner.close();
}
