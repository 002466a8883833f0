/**
 * The q8 KV cache (`--kv-cache q8`: int8 keys and values in blocks of 32 of a head's row, an f32 scale
 * a block). The GPU against the CPU reference with the same cache (which rounds as the GPU stores)
 * over Gemma 3, Llama and Qwen 2 shapes; the transformers fixture within a bound that q8's rounding
 * needs; the quality it costs against the f16 cache on the bundled model (trained, so its attention is
 * not the flat attention of random weights); its memory; and the head_dim it refuses.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { BUNDLED_MODEL } from '../../../src/engine/bundled.js';
import { ConfigError } from '../../../src/engine/errors.js';
import { GREEDY } from '../../../src/engine/generate/sampler.js';
import { Session } from '../../../src/engine/generate/session.js';
import type { Backend } from '../../../src/engine/models/backend.js';
import { CpuBackend } from '../../../src/engine/models/cpu-backend.js';
import { GpuBackend } from '../../../src/engine/models/gpu-backend.js';
import { type KvCacheType, kvCacheBytes } from '../../../src/engine/models/memory.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { loadWeights } from '../../../src/engine/models/weights.js';
import { compareLogits } from '../../../src/engine/quant/quality.js';
import { TextCodec } from '../../../src/engine/text/tokenizer.js';
import type { Allocator, Placement } from '../../../src/engine/vulkan/memory.js';
import { openGpu } from '../../support/gpu.js';
import { modelFixture, scratchDir } from '../../support/paths.js';
import { type RandomShape, writeRandomModel } from '../../support/random-model.js';
import { loadReference, maxDiff } from '../../support/reference.js';

const gpu = openGpu();
const root = scratchDir('kv-cache');
after(() => {
  gpu.device.destroy();
  fs.rmSync(root, { recursive: true, force: true });
});

function gpuBackend(dir: string, opts: { ctx: number; batch: number; kvCache: KvCacheType }) {
  const model = openModel(dir);
  const weights = loadWeights(model, gpu.alloc, gpu.cmds);
  const backend = new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, opts);
  return { backend, model, close: () => { backend.dispose(); weights.free(); model.checkpoint.close(); } };
}

/** Logits of each position of `ids` after the first `from`, teacher-forced through decode steps. */
function decodeLogits(b: Backend, ids: readonly number[], from: number): Float32Array {
  const vocab = b.spec.vocabSize;
  b.step(ids.slice(0, from), 0, { kind: 'none' });
  const out = new Float32Array((ids.length - from) * vocab);
  for (let t = from; t < ids.length; t++) out.set(b.step([ids[t]!], t, { kind: 'logits' }).logits!, (t - from) * vocab);
  return out;
}

const prompt = [5, 17, 30, 42, 99, 7, 250, 128, 64, 3, 11, 200, 77, 31, 8, 190];

describe(`q8 KV cache on ${gpu.device.info.name}`, () => {
  const shapes: RandomShape[] = [
    { family: 'gemma3', hidden: 160, intermediate: 224, layers: 4, heads: 4, kvHeads: 2, headDim: 64, vocab: 256, rope: 'default', tied: true, window: 5, pattern: 3, softcap: 20, finalSoftcap: 30, qScalar: 64, seed: 41 },
    { family: 'llama', hidden: 96, intermediate: 160, layers: 2, heads: 4, kvHeads: 1, headDim: 128, vocab: 256, rope: 'llama3', tied: false, seed: 42 },
    { family: 'qwen2', hidden: 224, intermediate: 352, layers: 2, heads: 4, kvHeads: 4, headDim: 32, vocab: 256, rope: 'default', tied: true, seed: 43 },
  ];
  for (const shape of shapes) {
    test(`${shape.family}, head_dim ${shape.headDim}, ${shape.heads}/${shape.kvHeads} heads: the GPU against the CPU reference with the same q8 cache (prefill, decode, chunked prefill)`, () => {
      const dir = path.join(root, `${shape.family}-${shape.headDim}`);
      writeRandomModel(dir, shape);
      const model = openModel(dir);
      const cpu = new CpuBackend(model, { ctx: 48, batch: 32, kvCache: 'q8' });
      const cpu16 = new CpuBackend(model, { ctx: 48, batch: 32 });
      const g = gpuBackend(dir, { ctx: 48, batch: 32, kvCache: 'q8' });
      const chunked = gpuBackend(dir, { ctx: 48, batch: 5, kvCache: 'q8' });
      try {
        const pg = g.backend.probe(prompt, 0);
        const pc = cpu.probe(prompt, 0);
        // The same rounding on both sides, but of keys computed in another order: a value on an int8
        // rounding edge may land one step apart (1/254 of its block's largest), so the bound is q8's step.
        const REL = 2e-2;
        const close = (what: string, got: Float32Array, want: Float32Array) => {
          const { diff, scale } = maxDiff(got, want);
          assert.ok(diff <= REL * scale, `${what}: largest difference ${diff.toExponential(2)} over ${REL} x ${scale.toFixed(2)}`);
          return diff / scale;
        };
        pc.hidden.forEach((want, l) => close(`layer ${l - 1}`, pg.hidden[l]!, want));
        close('logits', pg.logits, pc.logits);
        // The CPU's q8 cache rounds: its logits are not the f16 cache's (a test that cannot tell them apart would pass anything).
        const { diff: moved } = maxDiff(cpu16.probe(prompt, 0).logits, pc.logits);
        assert.ok(moved > 0, 'q8 rounding changes the reference logits');
        const vocab = model.spec.vocabSize;
        const q = compareLogits(decodeLogits(cpu, prompt, 6), decodeLogits(g.backend, prompt, 6), vocab);
        assert.ok(q.meanKl < 1e-3 && q.top1 >= 0.9, `decode logits against the reference: ${JSON.stringify(q)}`);
        const tokens = new Session(g.backend).generate(prompt, { maxTokens: 8, sampling: GREEDY, eosIds: [] }).tokens;
        assert.deepEqual(new Session(chunked.backend).generate(prompt, { maxTokens: 8, sampling: GREEDY, eosIds: [] }).tokens, tokens, 'prefilled in chunks of 5');
      } finally {
        g.close();
        chunked.close();
        cpu.dispose();
        cpu16.dispose();
        model.checkpoint.close();
      }
    });
  }

  test('gemma3-text fixture against transformers with a q8 cache: every layer within 3% of its largest value, logits top-1 where the margin is clear', () => {
    const ref = loadReference('gemma3-text');
    const g = gpuBackend(modelFixture('gemma3-text'), { ctx: 64, batch: 32, kvCache: 'q8' });
    try {
      const p = g.backend.probe(ref.inputIds, 0);
      let worst = 0;
      ref.layers.forEach((want, i) => {
        const { diff, scale } = maxDiff(p.hidden[i + 1]!, want);
        worst = Math.max(worst, diff / scale);
        assert.ok(diff <= 3e-2 * scale, `layer ${i}: ${diff.toExponential(2)} of ${scale.toFixed(2)}`);
      });
      const q = compareLogits(ref.logits, p.logits, g.backend.spec.vocabSize);
      assert.ok(q.meanKl < 1e-3, `logits against transformers: ${JSON.stringify(q)}`);
      assert.ok(worst > 4e-3 / 8, 'q8 moves the hidden states more than f16 rounding alone');
    } finally {
      g.close();
    }
  });

  test('the bundled model (trained): q8 against the f16 cache over a passage, prefill and decode: mean KL below 2e-3, top-1 agreeing at 95% of positions', () => {
    const codec = TextCodec.load(BUNDLED_MODEL);
    const text =
      'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness.';
    const ids = codec.encode(text);
    assert.ok(ids.length > 60, `${ids.length} tokens`);
    const [f16, q8] = (['f16', 'q8'] as const).map((kvCache) => gpuBackend(BUNDLED_MODEL, { ctx: 256, batch: 256, kvCache }));
    try {
      const vocab = f16!.backend.spec.vocabSize;
      const prefill = compareLogits(f16!.backend.probe(ids, 0).logits, q8!.backend.probe(ids, 0).logits, vocab);
      const decode = compareLogits(decodeLogits(f16!.backend, ids, 8), decodeLogits(q8!.backend, ids, 8), vocab);
      for (const [what, c] of [['prefill', prefill], ['decode', decode]] as const) {
        assert.ok(c.meanKl > 0, `${what}: q8 changes something`);
        assert.ok(c.meanKl < 2e-3 && c.top1 >= 0.95, `${what}: ${JSON.stringify(c)}`);
      }
      console.log(`kjv-tiny, q8 against f16 cache: prefill mean KL ${prefill.meanKl.toExponential(2)} (top-1 ${prefill.top1.toFixed(3)}), decode ${decode.meanKl.toExponential(2)} (top-1 ${decode.top1.toFixed(3)}) over ${ids.length} tokens`);
    } finally {
      f16!.close();
      q8!.close();
    }
  });

  test('memory: q8 takes 9/16 of the f16 cache, and the GPU allocates for its caches what the plan says', () => {
    const model = openModel(BUNDLED_MODEL);
    try {
      const s = model.spec;
      assert.equal(kvCacheBytes(s, 1000, 'q8') * 16, kvCacheBytes(s, 1000, 'f16') * 9);
      // The bytes of every buffer the backend allocates for its layers' keys, values and their scales.
      const held = (kvCache: KvCacheType) => {
        let bytes = 0;
        const alloc = Object.create(gpu.alloc) as Allocator;
        alloc.alloc = (size: number, label: string, placement?: Placement) => {
          if (/^layer \d+ (keys|values|key scales|value scales)$/.test(label)) bytes += size;
          return gpu.alloc.alloc(size, label, placement);
        };
        const backend = new GpuBackend(gpu.device, alloc, weights, model.spec, { ctx: 512, batch: 1, kvCache });
        backend.dispose();
        return bytes;
      };
      const weights = loadWeights(model, gpu.alloc, gpu.cmds);
      try {
        assert.equal(held('f16'), kvCacheBytes(s, 512, 'f16'));
        assert.equal(held('q8'), kvCacheBytes(s, 512, 'q8'));
      } finally {
        weights.free();
      }
    } finally {
      model.checkpoint.close();
    }
  });

  test('a head_dim that is not whole blocks of 32 is refused by name, on the GPU and on the CPU', () => {
    const dir = modelFixture('llama'); // head_dim 16
    const model = openModel(dir);
    try {
      const isRefusal = (e: unknown) => e instanceof ConfigError && /--kv-cache q8: this model's head_dim 16 is not a multiple of 32/.test(e.message) && /--kv-cache f16/.test(e.hint ?? '');
      assert.throws(() => new CpuBackend(model, { ctx: 16, kvCache: 'q8' }), isRefusal);
      const weights = loadWeights(model, gpu.alloc, gpu.cmds);
      try {
        assert.throws(() => new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, { ctx: 16, kvCache: 'q8' }), isRefusal);
      } finally {
        weights.free();
      }
    } finally {
      model.checkpoint.close();
    }
  });
});
