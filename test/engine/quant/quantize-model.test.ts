/**
 * unicorn quantize on the fixture models: the files hold exactly the layouts of docs/formats.md (the
 * bytes quantize.ts makes, which the kernel tests check the GPU against), the same bytes whatever
 * the worker count, shards that load like one file, metadata, a quality report within stated bounds
 * on lavapipe, and bad input refused with nothing left behind.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { decodeFloats } from '../../../src/engine/formats/dtypes.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { Checkpoint } from '../../../src/engine/formats/checkpoint.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { META, Q4_SUFFIX, Q8_SUFFIX } from '../../../src/engine/quant/file-format.js';
import { OUTPUT_MARKER, QuantizeError, quantizeModel } from '../../../src/engine/quant/quantize-model.js';
import { qualityReport } from '../../../src/engine/quant/quality.js';
import { quantizeQ4, quantizeQ8 } from '../../../src/engine/quant/quantize.js';
import { modelFixture, scratchDir } from '../../support/paths.js';
import { matmulKind } from '../../../src/engine/kernels/matmul.js';

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('unicorn quantize (engine)', () => {
  test('every scheme writes the documented layouts byte for byte, and the same bytes with 1 or 3 workers', async () => {
    const src = modelFixture('llama');
    const source = openModel(src);
    for (const scheme of ['int8', 'int4', 'mixed'] as const) {
      const outs = [];
      for (const workers of [1, 3]) {
        const out = path.join(scratchDir('quant'), 'out');
        await quantizeModel(src, out, { scheme, group: 32, workers, blockBytes: 4096 });
        outs.push(out);
      }
      assert.deepEqual(
        fs.readFileSync(path.join(outs[0]!, 'model.safetensors')),
        fs.readFileSync(path.join(outs[1]!, 'model.safetensors')),
        `${scheme}: worker count changed the bytes`,
      );
      const f = SafetensorsFile.open(path.join(outs[0]!, 'model.safetensors'));
      assert.equal(f.metadata[META.scheme], scheme);
      assert.equal(f.metadata[META.group], '32');
      assert.equal(f.metadata[META.format], '1');
      assert.match(f.metadata[META.source]!, /^[0-9a-f]{64}$/);
      let quantized = 0;
      for (const [canonical, t] of source.bound.tensors) {
        const w = decodeFloats(t.dtype, t.file.readAll(t.name));
        const [rows, cols] = [t.shape[0]!, t.shape[1] ?? 1];
        const role = canonical.includes('.mlp.')
          ? 'mlp'
          : canonical === 'embed_tokens.weight'
            ? 'embedding'
            : canonical.includes('self_attn') && t.shape.length === 2
              ? 'attention'
              : canonical === 'lm_head.weight'
                ? 'output'
                : 'small';
        let want = role === 'small' ? 'float' : scheme === 'int8' || role === 'embedding' || (scheme === 'mixed' && role !== 'mlp') ? 'q8' : 'q4';
        if (want === 'q4' && cols % 32 !== 0) want = 'q8'; // the fixture's 176-wide down projection
        if (want === 'q8' && cols % 16 !== 0) want = 'float';
        if (want === 'float') {
          assert.deepEqual(f.readAll(t.name), t.file.readAll(t.name), `${t.name} copied as it was`);
        } else if (want === 'q8') {
          const q = quantizeQ8(w, rows, cols);
          assert.deepEqual(f.readAll(t.name), bytes(q.q), t.name);
          assert.deepEqual(f.readAll(t.name + Q8_SUFFIX), bytes(q.scales), t.name);
          quantized++;
        } else {
          const q = quantizeQ4(w, rows, cols, 32);
          assert.deepEqual(f.readAll(t.name), q.packed, t.name);
          assert.deepEqual(f.readAll(t.name + Q4_SUFFIX), bytes(q.params), t.name);
          quantized++;
        }
      }
      assert.ok(quantized > 0);
      f.close();
      for (const name of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])
        assert.ok(fs.existsSync(path.join(outs[0]!, name)), name);
      // A quantized model opens like any other: every tensor bound, with its quantization.
      const q = openModel(outs[0]!);
      assert.ok([...q.bound.tensors.values()].some((t) => t.quant?.kind === (scheme === 'int8' ? 'q8' : 'q4')));
      q.checkpoint.close();
    }
    source.checkpoint.close();
  });

  test('shards: small shards and an index, loading to the same tensors as one file', async () => {
    const out = path.join(scratchDir('quant'), 'sharded');
    const r = await quantizeModel(modelFixture('gemma3-text'), out, { scheme: 'mixed', group: 64, workers: 2, shardBytes: 100_000 });
    assert.ok(r.shards > 2, `${r.shards} shards`);
    assert.ok(fs.existsSync(path.join(out, 'model.safetensors.index.json')));
    const one = path.join(scratchDir('quant'), 'one');
    await quantizeModel(modelFixture('gemma3-text'), one, { scheme: 'mixed', group: 64, workers: 2 });
    const a = Checkpoint.open(out);
    const b = Checkpoint.open(one);
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    for (const [name, t] of a.tensors) assert.deepEqual(t.file.readAll(name), b.tensors.get(name)!.file.readAll(name), name);
    // Every shard carries the same metadata, source hash included.
    const hashes = new Set(a.files.map((f) => f.metadata[META.source]));
    assert.equal(hashes.size, 1);
    assert.equal([...hashes][0], SafetensorsFile.open(path.join(one, 'model.safetensors')).metadata[META.source]);
    a.close();
    b.close();
  });

  test('quality on lavapipe: KL and top-1 of the quantized fixture against the original, within the stated bounds', async () => {
    // Tiny random models are much harder to quantize than trained ones (64-wide rows: one INT4 group
    // per row), so the bounds are loose; INT8 must stay close.
    const bounds = { int8: { kl: 0.05, top1: 0.85 }, mixed: { kl: 0.6, top1: 0.5 } } as const;
    for (const scheme of ['int8', 'mixed'] as const) {
      const out = path.join(scratchDir('quant'), scheme);
      let stored = '';
      await quantizeModel(modelFixture('gemma3-text'), out, {
        scheme,
        group: 64,
        workers: 2,
        evaluate: async (dir) => {
          const q = qualityReport(modelFixture('gemma3-text'), dir);
          stored = JSON.stringify({ mean_kl: q.meanKl, top1: q.top1 });
          assert.ok(q.meanKl < bounds[scheme].kl && q.top1 > bounds[scheme].top1, `${scheme}: KL ${q.meanKl}, top-1 ${q.top1}`);
          return stored;
        },
      });
      assert.equal(SafetensorsFile.open(path.join(out, 'model.safetensors')).metadata[META.quality]!.trim(), stored);
    }
  });

  test('a quantized model runs on the GPU as the CPU reference computes it: prefill (INT8 exactly; INT4 through int8 activations, close) and decode steps (both through int8 activations, close)', async () => {
    const { openRunner } = await import('../../../src/engine/generate/runner.js');
    const { compareLogits } = await import('../../../src/engine/quant/quality.js');
    for (const scheme of ['int8', 'int4'] as const) {
      const out = path.join(scratchDir('quant'), scheme);
      await quantizeModel(modelFixture('qwen2'), out, { scheme, group: 32, workers: 2 });
      const ids = [5, 17, 300, 42, 99, 7, 250, 128, 64, 3];
      const gpu = openRunner(out, { ctx: 64, text: false });
      const cpu = openRunner(out, { ctx: 64, text: false, device: 'cpu' });
      const a = gpu.backend.probe(ids, 0).logits;
      const b = cpu.backend.probe(ids, 0).logits;
      const c = compareLogits(b, a, 512);
      // INT8's prefill is exact up to f32 sums, or to f16 products on cooperative matrices (matmul.ts).
      const int8Diff = matmulKind(gpu.device!.info) === 'coop' ? 0.15 : 0.05;
      if (scheme === 'int8') assert.ok(c.maxDiff < int8Diff && c.top1 === 1, `int8: ${JSON.stringify(c)}`);
      else assert.ok(c.meanKl < 0.05 && c.top1 >= 0.8, `int4: ${JSON.stringify(c)}`);
      // Decode steps (the recorded step: norms that also write int8 activations, INT8 and INT4 on the
      // integer-dot path) against the CPU's, token by token after the same prompt.
      gpu.backend.step(ids, 0, { kind: 'none' });
      cpu.backend.step(ids, 0, { kind: 'none' });
      const steps = [11, 400, 77, 5, 260, 31];
      const ga = new Float32Array(steps.length * 512);
      const cb = new Float32Array(steps.length * 512);
      for (const [i, id] of steps.entries()) {
        ga.set(gpu.backend.step([id], ids.length + i, { kind: 'logits' }).logits!, i * 512);
        cb.set(cpu.backend.step([id], ids.length + i, { kind: 'logits' }).logits!, i * 512);
      }
      const d = compareLogits(cb, ga, 512);
      // INT8: only the activations' rounding differs (64-wide rows of a random model); INT4 as the prefill above.
      if (scheme === 'int8') assert.ok(d.meanKl < 0.01 && d.top1 === 1, `int8 decode: ${JSON.stringify(d)}`);
      // With the cooperative matmul the prompt's k and v come from f16 products too (this random model's
      // logits are wide: lavapipe's 8x8 shapes measured a mean KL of 0.075 here, the H200's under 0.05).
      else assert.ok(d.meanKl < (matmulKind(gpu.device!.info) === 'coop' ? 0.1 : 0.05) && d.top1 >= 0.8, `int4 decode: ${JSON.stringify(d)}`);
      gpu.close();
      cpu.close();
    }
  });

  test('bad input: an existing output, an already quantized model, a bad group; nothing left behind', async () => {
    const dir = scratchDir('quant');
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    await assert.rejects(
      quantizeModel(modelFixture('qwen2'), out, { scheme: 'int8', group: 64, workers: 1 }),
      (e: unknown) => e instanceof QuantizeError && /already exists/.test(e.message) && /--force/.test(e.hint ?? ''),
    );
    assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'mine');
    // --force replaces only a directory unicorn wrote: this one is the user's, and stays.
    await assert.rejects(
      quantizeModel(modelFixture('qwen2'), out, { scheme: 'int8', group: 64, workers: 1, force: true }),
      (e: unknown) => e instanceof QuantizeError && /was not written by unicorn quantize/.test(e.message),
    );
    assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'mine');
    fs.rmSync(out, { recursive: true });
    await quantizeModel(modelFixture('qwen2'), out, { scheme: 'int8', group: 64, workers: 1 });
    assert.ok(fs.existsSync(path.join(out, OUTPUT_MARKER)), 'every output carries the marker');
    await quantizeModel(modelFixture('qwen2'), out, { scheme: 'int4', group: 64, workers: 1, force: true });
    const replaced = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.equal(replaced.metadata[META.scheme], 'int4', "unicorn's own output was replaced");
    replaced.close();
    await assert.rejects(quantizeModel(out, path.join(dir, 'again'), { scheme: 'int4', group: 64, workers: 1 }), /already quantized/);
    await assert.rejects(quantizeModel(modelFixture('qwen2'), path.join(dir, 'g'), { scheme: 'int4', group: 48, workers: 1 }), /groups are 32, 64, 128/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['out'], 'no temporary directory or partial output');
  });
});
