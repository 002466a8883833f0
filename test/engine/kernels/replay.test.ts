/**
 * A decode step recorded once and submitted again and again: per-token values (the token id, the
 * position's rope cos/sin) live in small mapped buffers that the shaders read; the argmax of one
 * step writes the id the next step embeds. A full GC runs between submits (the lavapipe crash the
 * device notes describe came from collected Buffers behind a reused recording).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { MatVec, singleMatrix } from '../../../src/engine/kernels/matvec.js';
import { Ops, allocKv } from '../../../src/engine/kernels/ops.js';
import { argmaxRef, ropeRef } from '../../../src/engine/kernels/reference.js';
import { inverseFrequencies, ropeTable } from '../../../src/engine/kernels/rope-table.js';
import { matvecRef } from '../../../src/engine/quant/quantize.js';
import { uploadNew } from '../../../src/engine/vulkan/transfer.js';
import { openGpu, randomFloats } from '../../support/gpu.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const gpu = openGpu();
after(() => gpu.device.destroy());

test('a recorded decode step replays with per-token values from mapped buffers', () => {
  const vocab = 64;
  const hidden = 32;
  const scale = 3;
  const emb = randomFloats(vocab * hidden, 21);
  const w = randomFloats(vocab * hidden, 22);
  const inv = inverseFrequencies({ theta: 10_000, scaling: { kind: 'none' } }, hidden);
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer);
  const table = uploadNew(gpu.alloc, gpu.cmds, bytes(emb), 'embeddings');
  const out = uploadNew(gpu.alloc, gpu.cmds, bytes(w), 'output weights');
  const ids = gpu.alloc.alloc(16, 'token id', 'host');
  const cs = gpu.alloc.alloc(hidden * 4, 'rope row', 'host');
  const h = gpu.alloc.alloc(hidden * 4, 'hidden');
  // rope_store rotates h in place as the one head of q (and stores a zero k and v in a cache slot).
  const zeros = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(hidden * 4), 'k and v');
  const slot = uploadNew(gpu.alloc, gpu.cmds, new Uint8Array(4), 'slot');
  const cache = allocKv(gpu.alloc, 'f16', 1, hidden, 'cache');
  const logits = gpu.alloc.alloc(vocab * 4, 'logits');
  const ops = new Ops(gpu.device);
  const mv = new MatVec(gpu.device, gpu.alloc);

  gpu.cmds.begin({ reusable: true });
  ops.embed(gpu.cmds, singleMatrix('f32', vocab, hidden, 0, table, null), ids, h, 1, scale);
  gpu.cmds.barrier();
  ops.ropeStore(gpu.cmds, h, zeros, zeros, cs, slot, cache, { tokens: 1, heads: 1, kvHeads: 1, headDim: hidden, capacity: 1 });
  gpu.cmds.barrier();
  mv.record(gpu.cmds, singleMatrix('f32', vocab, hidden, 64, out, null), h, logits);
  gpu.cmds.barrier();
  ops.argmax(gpu.cmds, logits, ids, vocab, 0);
  gpu.cmds.end();

  const idView = new Uint32Array(gpu.alloc.view(ids).buffer, gpu.alloc.view(ids).byteOffset, 1);
  const csView = new Float32Array(gpu.alloc.view(cs).buffer, gpu.alloc.view(cs).byteOffset, hidden);
  let token = 5;
  idView[0] = token;
  const seen: number[] = [];
  for (let pos = 0; pos < 12; pos++) {
    const row = ropeTable(inv, [pos]);
    csView.set(row);
    gc();
    gpu.cmds.submitAndWait();
    // CPU: the same step.
    const x = Float32Array.from(emb.subarray(token * hidden, (token + 1) * hidden), (v) => Math.fround(v * scale));
    const want = argmaxRef(matvecRef(w, ropeRef(x, row, 1, 1, hidden), vocab, hidden));
    assert.equal(idView[0], want, `step ${pos}: token ${token} -> ${idView[0]}, CPU says ${want}`);
    token = want;
    seen.push(token);
  }
  assert.ok(new Set(seen).size > 1, `the chain should move through several tokens: ${seen.join(' ')}`);
});
