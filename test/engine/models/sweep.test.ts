/**
 * The GPU backend against the CPU reference over the shapes real models use and a few they might:
 * tiny random checkpoints written here (test/support/random-model.ts) for Gemma 3, Llama and Qwen 2
 * over head_dim 32-256, 1 to all KV heads, hidden sizes that are odd multiples of 32, intermediate
 * sizes not divisible by 64, sliding windows shorter than the prompt, softcaps on and off, default /
 * linear / llama3 rope, tied and untied embeddings (Qwen 2: q/k/v biases), in bf16 and in every
 * quantized scheme. Each case: every layer's hidden state and the logits of a prompt in one prefill;
 * the greedy continuation through the recorded decode step; the same prompt prefilled in chunks of
 * 5; and a second turn that reuses the cached prefix. Quantized checkpoints run that way with float
 * activations (what the reference computes), then their decode step on int8 activations within looser bounds.
 *
 * CI runs a sample of the grid drawn with a fixed seed (SAMPLE cases, every family and scheme
 * among them); UNICORN_SWEEP=full runs all of it (on the device: see the closing notes).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { UnsupportedShapeError } from '../../../src/engine/errors.js';
import { GREEDY } from '../../../src/engine/generate/sampler.js';
import { Session } from '../../../src/engine/generate/session.js';
import type { Backend } from '../../../src/engine/models/backend.js';
import { CpuBackend } from '../../../src/engine/models/cpu-backend.js';
import { GpuBackend } from '../../../src/engine/models/gpu-backend.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { loadWeights } from '../../../src/engine/models/weights.js';
import { compareLogits } from '../../../src/engine/quant/quality.js';
import { quantizeModel } from '../../../src/engine/quant/quantize-model.js';
import { openGpu } from '../../support/gpu.js';
import { scratchDir } from '../../support/paths.js';
import { type Family, type RandomShape, type RopeKind, writeRandomModel } from '../../support/random-model.js';
import { maxDiff } from '../../support/reference.js';

const gpu = openGpu();
const root = scratchDir('sweep');
after(() => { gpu.device.destroy(); fs.rmSync(root, { recursive: true, force: true }); });

type Scheme = 'bf16' | 'int8' | 'int4' | 'mixed';
interface Case { readonly shape: RandomShape; readonly scheme: Scheme }

const FAMILIES: Family[] = ['gemma3', 'llama', 'qwen2'];
const HEAD_DIMS = [32, 48, 64, 80, 96, 128, 256];
const SCHEMES: Scheme[] = ['bf16', 'int8', 'int4', 'mixed'];
const HIDDEN = [96, 160, 224, 288];
const INTER = [160, 224, 352];
const ROPES: RopeKind[] = ['default', 'linear', 'llama3'];
const VOCAB = 256;

/** The whole grid: family x head_dim x KV heads (1, half, all of 4) x scheme; the other axes cycle. */
function grid(): Case[] {
  const out: Case[] = [];
  let i = 0;
  for (const family of FAMILIES) for (const headDim of HEAD_DIMS) for (const kvHeads of [1, 2, 4]) for (const scheme of SCHEMES) {
    const gemma = family === 'gemma3';
    out.push({
      scheme,
      shape: {
        family, headDim, heads: 4, kvHeads, hidden: HIDDEN[i % HIDDEN.length]!, intermediate: INTER[(i >> 1) % INTER.length]!, layers: gemma ? 4 : 2, vocab: VOCAB,
        rope: ROPES[(i >> 2) % ROPES.length]!, tied: (i & 1) === 0 || gemma,
        ...(gemma ? { window: 3 + (i % 3), pattern: 3, softcap: (i >> 3) % 2 === 0 ? 0 : 20, finalSoftcap: (i >> 4) % 2 === 0 ? 30 : 0, qScalar: headDim + 8 * (i % 3) } : {}),
        seed: 100 + i,
      },
    });
    i++;
  }
  return out;
}

/** A fixed-seed sample: head_dim 48 and 256, each family and each scheme at least once. */
const SAMPLE = 7;
function sample(all: Case[]): Case[] {
  let s = 12345;
  const rnd = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32; };
  const picked = new Set<number>();
  const want = (pred: (c: Case) => boolean) => {
    const idx = all.map((c, i) => (pred(c) && !picked.has(i) ? i : -1)).filter((i) => i >= 0);
    if (idx.length > 0) picked.add(idx[Math.floor(rnd() * idx.length)]!);
  };
  want((c) => c.shape.family === 'gemma3' && c.shape.headDim === 48 && c.scheme === 'bf16');
  want((c) => c.shape.family === 'llama' && c.shape.headDim === 256 && c.scheme === 'int8');
  want((c) => c.shape.family === 'qwen2' && c.scheme === 'int4');
  want((c) => c.shape.family === 'gemma3' && c.scheme === 'mixed');
  while (picked.size < SAMPLE) want(() => true);
  return [...picked].sort((a, b) => a - b).map((i) => all[i]!);
}

const full = process.env['UNICORN_SWEEP'] === 'full';
const cases = full ? grid() : sample(grid());

const label = (c: Case) => {
  const s = c.shape;
  return `${s.family} ${c.scheme}: head_dim ${s.headDim}, ${s.heads}/${s.kvHeads} heads, hidden ${s.hidden}, intermediate ${s.intermediate}, rope ${s.rope}, ${s.tied ? 'tied' : 'untied'}${s.family === 'gemma3' ? `, window ${s.window}, softcap ${s.softcap || 'off'}/${s.finalSoftcap || 'off'}` : ''}`;
};

async function modelFor(c: Case, i: number): Promise<string> {
  const src = path.join(root, `m${i}`);
  writeRandomModel(src, c.shape);
  if (c.scheme === 'bf16') return src;
  const out = path.join(root, `m${i}-${c.scheme}`);
  await quantizeModel(src, out, { scheme: c.scheme, group: 32, workers: 1 });
  return out;
}

function gpuBackend(dir: string, batch: number, integerDot = true) {
  const model = openModel(dir);
  const weights = loadWeights(model, gpu.alloc, gpu.cmds);
  const backend = new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, { ctx: 48, batch, integerDot });
  return { backend, close: () => { backend.dispose(); weights.free(); model.checkpoint.close(); } };
}

/** Greedy on the CPU reference, step by step, with each step's margin between the best two logits. */
function cpuGreedy(b: Backend, prompt: readonly number[], n: number): { tokens: number[]; margins: number[] } {
  const tokens: number[] = [];
  const margins: number[] = [];
  let logits = b.step(prompt, 0, { kind: 'logits' }).logits!;
  for (let i = 0; i < n; i++) {
    const sorted = Array.from(logits.keys()).sort((x, y) => logits[y]! - logits[x]! || x - y);
    tokens.push(sorted[0]!);
    margins.push(logits[sorted[0]!]! - logits[sorted[1]!]!);
    if (i + 1 < n) logits = b.step([sorted[0]!], prompt.length + i, { kind: 'logits' }).logits!;
  }
  return { tokens, margins };
}

const prompt = [5, 17, 30, 42, 99, 7, 250, 128, 64, 3, 11, 200];
const REL = 4e-3;

describe(`GPU against the CPU reference over model shapes, on ${gpu.device.info.name} (${full ? 'full grid' : `a sample of ${SAMPLE}; UNICORN_SWEEP=full for all ${grid().length}`})`, () => {
  cases.forEach((c, i) => {
    test(label(c), async () => {
      const dir = await modelFor(c, i);
      const model = openModel(dir);
      const cpu = new CpuBackend(model, { ctx: 48, batch: 32 });
      // INT8 / INT4: first with float activations, which the reference computes (so the bounds are
      // bf16's); the production path's int8 activations are checked after, against looser bounds.
      const quantized = c.scheme !== 'bf16';
      const g = gpuBackend(dir, 32, !quantized);
      const chunked = gpuBackend(dir, 5, !quantized);
      const int8x = quantized && gpu.device.info.integerDotProduct ? gpuBackend(dir, 32) : undefined;
      try {
        const vocab = model.spec.vocabSize;
        // One prefill: every layer, the final norm, the logits.
        const pg = g.backend.probe(prompt, 0);
        const pc = cpu.probe(prompt, 0);
        let worst = 0;
        const close = (what: string, got: Float32Array, want: Float32Array) => {
          const { diff, scale } = maxDiff(got, want);
          worst = Math.max(worst, diff);
          assert.ok(diff <= REL * scale, `${what}: largest difference ${diff.toExponential(2)} over ${REL} x ${scale.toFixed(2)}`);
        };
        pc.hidden.forEach((want, l) => close(l === 0 ? 'embeddings' : `layer ${l - 1}`, pg.hidden[l]!, want));
        close('final norm', pg.finalNorm, pc.finalNorm);
        close('logits', pg.logits, pc.logits);
        // The recorded decode step along the reference's greedy path (teacher-forced): its logits at
        // each step against the reference's; INT8 / INT4 projections take int8 activations there.
        const n = 8;
        const want = cpuGreedy(cpu, prompt, n);
        g.backend.step(prompt, 0, { kind: 'none' });
        const path = [...prompt, ...want.tokens];
        const dg = new Float32Array((n - 1) * vocab);
        const dc = new Float32Array((n - 1) * vocab);
        cpu.step(prompt, 0, { kind: 'none' });
        for (let k = 0; k < n - 1; k++) {
          dg.set(g.backend.step([path[prompt.length + k]!], prompt.length + k, { kind: 'logits' }).logits!, k * vocab);
          dc.set(cpu.step([path[prompt.length + k]!], prompt.length + k, { kind: 'logits' }).logits!, k * vocab);
        }
        close('decode logits', dg, dc);
        if (int8x !== undefined) {
          // The production path: every INT8 / INT4 projection of a decode step on int8 activations
          // (rounding each block of 32 values to 8 bits: on these tiny random models up to a few
          // logits, mean KL up to 0.16 over the full grid). Bounded, so that a wrong kernel still
          // fails: the gated projection overwriting its own int8 input (now refused) gave KL 20.
          int8x.backend.step(prompt, 0, { kind: 'none' });
          const dq = new Float32Array((n - 1) * vocab);
          for (let k = 0; k < n - 1; k++) dq.set(int8x.backend.step([path[prompt.length + k]!], prompt.length + k, { kind: 'logits' }).logits!, k * vocab);
          const q = compareLogits(dc, dq, vocab);
          assert.ok(q.meanKl < 0.5 && q.top1 >= 0.5, `decode logits on int8 activations: ${JSON.stringify(q)}`);
        }
        // Greedy, free-running, against the reference's, up to a near tie: where the reference's two
        // best logits are closer than twice the largest logit difference seen, either choice is right
        // within the numerics and the continuations may part.
        const tol = Math.max(2 * worst, 1e-3);
        const agrees = (what: string, got: number[], ref: { tokens: number[]; margins: number[] }) => {
          const first = got.findIndex((t, k) => t !== ref.tokens[k]);
          if (first >= 0) assert.ok(ref.margins[first]! < tol, `${what}: greedy parts at token ${first} (${got.join(' ')} vs ${ref.tokens.join(' ')}) where the reference's margin is ${ref.margins[first]!.toFixed(4)} (tolerance ${tol.toFixed(4)})`);
        };
        const got = new Session(g.backend).generate(prompt, { maxTokens: n, sampling: GREEDY, eosIds: [] }).tokens;
        agrees('decode', got, want);
        // Chunked prefill (sliding rings of window + 4 slots): the same kernels on the same values, so exactly the same tokens.
        assert.deepEqual(new Session(chunked.backend).generate(prompt, { maxTokens: n, sampling: GREEDY, eosIds: [] }).tokens, got, 'prefilled in chunks of 5');
        // A second turn reusing the cache (its first turn's tokens were cached by decode steps), against a fresh reference run.
        const s = new Session(g.backend);
        const r1 = s.generate(prompt.slice(0, 7), { maxTokens: 3, sampling: GREEDY, eosIds: [] });
        const turn2 = [...prompt.slice(0, 7), ...r1.tokens, ...prompt.slice(7)];
        const r2 = s.generate(turn2, { maxTokens: 4, sampling: GREEDY, eosIds: [] });
        assert.ok(r2.timings.reusedTokens > 0, 'the second turn reuses the cached prefix');
        agrees('a reused prefix', r2.tokens, cpuGreedy(cpu, turn2, 4));
      } finally {
        g.close();
        chunked.close();
        int8x?.close();
        cpu.dispose();
        model.checkpoint.close();
      }
    });
  });

  test('shapes the GPU kernels do not take are refused before anything runs, naming the shape and the limit; the CPU reference runs them', () => {
    const base: RandomShape = { family: 'llama', hidden: 64, intermediate: 128, layers: 1, heads: 2, kvHeads: 1, headDim: 32, vocab: VOCAB, rope: 'default', tied: true, seed: 9 };
    for (const [shape, message] of [
      [{ ...base, headDim: 320 }, /head_dim 320: unicorn's attention kernels take head_dim up to 256, a multiple of 4/],
      [{ ...base, headDim: 30 }, /head_dim 30: unicorn's attention kernels take head_dim up to 256, a multiple of 4/],
      [{ ...base, hidden: 100 }, /layers\.0\.self_attn\.q_proj\.weight: rows of 100 bf16 values; the GPU kernels read rows in blocks of 8/],
    ] as const) {
      const dir = path.join(root, `refused-${shape.headDim}-${shape.hidden}`);
      writeRandomModel(dir, shape);
      const model = openModel(dir);
      const weights = loadWeights(model, gpu.alloc, gpu.cmds);
      try {
        assert.throws(() => new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, { ctx: 16 }), (e: unknown) => e instanceof UnsupportedShapeError && message.test(e.message) && /--device cpu/.test(e.hint ?? ''));
        const cpu = new CpuBackend(model, { ctx: 16 });
        assert.ok(Number.isFinite(cpu.step([1, 2, 3], 0, { kind: 'argmax' }).argmax!));
        cpu.dispose();
      } finally {
        weights.free();
        model.checkpoint.close();
      }
    }
  });
});
