/**
 * The GPU work each fixture's passes lower to, held fixed: every dispatch (kernel, specialization and
 * push constants, grid, buffer ranges by label), barrier and copy of a decode step (for each output
 * the sampler asks for) and of a 24-token prefill, against the plans recorded in test/fixtures/plans/
 * for this kind of device (lavapipe at subgroups of 4, 8 and 16, and with UNICORN_MATMUL=coop
 * UNICORN_ATTENTION=coop on Mesa 26.1 at 8: the devices CI runs). A refactor of
 * how the forward pass becomes dispatches must leave them identical, or say why and record them
 * again: `UNICORN_WRITE_PLANS=1 node --test dist/test/engine/models/plan.test.js` (the same GPU work
 * runs at the same speed).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Output } from '../../../src/engine/models/backend.js';
import { GpuBackend } from '../../../src/engine/models/gpu-backend.js';
import { openModel } from '../../../src/engine/models/model-dir.js';
import { loadWeights } from '../../../src/engine/models/weights.js';
import { openGpu } from '../../support/gpu.js';
import { FIXTURES, MODEL_FIXTURES, modelFixture, scratchDir } from '../../support/paths.js';
import { quantizeModel } from '../../../src/engine/quant/quantize-model.js';
import { matmulKind } from '../../../src/engine/kernels/matmul.js';
import { attentionKind } from '../../../src/engine/kernels/attention-coop.js';

const gpu = openGpu();
after(() => gpu.device.destroy());
const info = gpu.device.info;
// The prefill kernels are in the name where they are not the device's default (UNICORN_MATMUL=coop and
// UNICORN_ATTENTION=coop on lavapipe).
const matmul = matmulKind(info) === matmulKind(info, '') ? '' : `-matmul_${matmulKind(info)}`;
const attention = attentionKind(info) === attentionKind(info, '') ? '' : `-attention_${attentionKind(info)}`;
const signature = `${info.driverName}-${info.type}-subgroup${info.subgroupSize}${info.integerDotProduct ? '-idot' : ''}${matmul}${attention}`.replace(/[^A-Za-z0-9-]+/g, '_');
const file = path.join(FIXTURES, 'plans', `${signature}.json`);
const write = process.env['UNICORN_WRITE_PLANS'] === '1';
const recorded = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Record<string, string[]>>) : undefined;

const PASSES: [string, number, Output][] = [
  ['decode, argmax', 1, { kind: 'argmax' }],
  ['decode, top-k 40', 1, { kind: 'topk', k: 40 }],
  ['decode, logits', 1, { kind: 'logits' }],
  ['prefill of 24, logits', 24, { kind: 'logits' }],
];

describe(`the dispatches each pass lowers to, on ${info.name} (${signature})`, () => {
  const plans: Record<string, Record<string, string[]>> = {};
  // The fixtures as they are (bf16), and two quantized (the int8 activations' producers and consumers).
  const cases: [string, () => Promise<string>][] = [
    ...MODEL_FIXTURES.map((name) => [name, async () => modelFixture(name)] as [string, () => Promise<string>]),
    ...(['gemma3-text mixed', 'qwen2 int4'] as const).map((name) => [name, async () => {
      const [fixture, scheme] = name.split(' ') as [string, 'mixed' | 'int4'];
      const out = path.join(scratchDir('plan'), scheme);
      await quantizeModel(modelFixture(fixture), out, { scheme, group: 32, workers: 1 });
      return out;
    }] as [string, () => Promise<string>]),
  ];
  for (const [name, dirOf] of cases) {
    test(name, async (t) => {
      const model = openModel(await dirOf());
      const weights = loadWeights(model, gpu.alloc, gpu.cmds);
      const backend = new GpuBackend(gpu.device, gpu.alloc, weights, model.spec, { ctx: 64, batch: 32 });
      try {
        plans[name] = Object.fromEntries(PASSES.map(([label, tokens, output]) => [label, backend.plan(tokens, output)]));
        if (write) return;
        if (recorded === undefined) {
          t.skip(`no plans recorded for ${signature} (test/fixtures/plans has them for the devices CI runs)`);
          return;
        }
        for (const [label] of PASSES) assert.deepEqual(plans[name]![label], recorded[name]?.[label], `${name}, ${label}`);
      } finally {
        backend.dispose();
        weights.free();
        model.checkpoint.close();
      }
    });
  }
  after(() => {
    if (write) fs.writeFileSync(file, `${JSON.stringify(plans, null, 1)}\n`);
  });
});
