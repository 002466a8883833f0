import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FlashAttention, type FlashTiles, attentionKind, flashProblem, flashShared, flashTiles } from '../../../src/engine/kernels/attention-coop.js';
import { Ops, allocKv, freeKv } from '../../../src/engine/kernels/ops.js';
import { attentionRef, roundF16, roundKv } from '../../../src/engine/kernels/reference.js';
import type { KvCacheType } from '../../../src/engine/models/memory.js';
import { gpuIo, openGpu, randomFloats } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());
const ops = new Ops(gpu.device);
const info = gpu.device.info;
const coop = flashTiles(info, 64);
const none = coop === null && `${info.name} has no cooperative matrices`;

const { put, getF32, run } = gpuIo(gpu);

interface Case {
  n: number;
  chunk: number;
  capacity: number;
  window: number;
  softcap: number;
  d: number;
  heads: number;
  kvHeads: number;
  /** Scales the queries: large ones make every step's scores pass the last reference (the rescale path). */
  qScale?: number;
  /** Keys that grow along the sequence: each step's scores exceed the last step's. */
  growing?: boolean;
  tiles?: FlashTiles;
  /** The reference takes Q as it is (not rounded to f16), and the tolerance is f32's: for Q and P in two f16 parts. */
  exactQ?: boolean;
  /** The cache's type (f16 unless given); q8's values reach the kernel's shared memory as f16. */
  kv?: KvCacheType;
}

/**
 * Prompt positions 0..n-1 through rope_store (the identity rotation: keys and values stored as they
 * are) and the flash kernel in chunks (store the chunk's keys, then attend), every query against the
 * reference over the whole sequence in f16, and against the plain kernel on the same cache.
 */
function check(c: Case, seed: number): void {
  const { n, chunk, d, heads, kvHeads } = c;
  const flash = new FlashAttention(gpu.device, gpu.alloc, { kind: 'coop', ...(c.tiles === undefined ? {} : { tiles: c.tiles }) });
  const scale = 1 / Math.sqrt(d);
  // q8: keys and values that a q8 cache holds exactly (rope_store's quantization of them gives the same
  // int8 the reference's does; of arbitrary values, one on a rounding edge may land a step apart on a GPU).
  const exact = (x: Float32Array) => (c.kv === 'q8' ? roundKv(x, 'q8') : x);
  const k = exact(randomFloats(n * kvHeads * d, seed).map((x, i) => (c.growing === true ? x * (1 + Math.floor(i / (kvHeads * d)) / 8) : x)));
  const v = exact(randomFloats(n * kvHeads * d, seed + 1));
  const q = randomFloats(n * heads * d, seed + 2).map((x) => x * (c.qScale ?? 4));
  const type = c.kv ?? 'f16';
  const cache = allocKv(gpu.alloc, type, kvHeads * c.capacity, d, 'cache');
  const out = new Float32Array(q.length);
  const plain = new Float32Array(q.length);
  try {
    for (let s = 0; s < n; s += chunk) {
      const t = Math.min(chunk, n - s);
      const span = (a: Float32Array, width: number) => a.slice(s * width, (s + t) * width);
      const [kb, vb, qb] = [put(span(k, kvHeads * d)), put(span(v, kvHeads * d)), put(span(q, heads * d))];
      const pb = put(Uint32Array.from({ length: t }, (_, i) => s + i));
      const identity = put(Float32Array.from({ length: t * d }, (_, i) => (i % 2 === 0 ? 1 : 0)));
      const ob = gpu.alloc.alloc(t * heads * d * 4, 'out');
      const pl = gpu.alloc.alloc(t * heads * d * 4, 'plain out');
      const shape = { tokens: t, heads, kvHeads, headDim: d, capacity: c.capacity, window: c.window, scale, softcap: c.softcap };
      run(() => {
        ops.ropeStore(gpu.cmds, qb, kb, vb, identity, pb, cache, { tokens: t, heads, kvHeads, headDim: d, capacity: c.capacity });
        gpu.cmds.barrier();
        if (t > 1) flash.record(gpu.cmds, qb, cache, pb, ob, shape);
        else ops.attention(gpu.cmds, qb, cache, pb, ob, shape);
        ops.attention(gpu.cmds, qb, cache, pb, pl, shape);
      });
      out.set(getF32(ob, t * heads * d), s * heads * d);
      plain.set(getF32(pl, t * heads * d), s * heads * d);
      for (const b of [kb, vb, qb, pb, identity, ob, pl]) gpu.alloc.free(b);
    }
  } finally {
    freeKv(gpu.alloc, cache);
  }
  const kc = new Float32Array(kvHeads * n * d);
  const vc = new Float32Array(kvHeads * n * d);
  // As the kernel reads the cache: f16, or q8's values made f16.
  const [k16, v16] = type === 'f16' ? [roundF16(k), roundF16(v)] : [roundF16(roundKv(k, 'q8')), roundF16(roundKv(v, 'q8'))];
  for (let p = 0; p < n; p++)
    for (let h = 0; h < kvHeads; h++)
      for (let i = 0; i < d; i++) {
        kc[(h * n + p) * d + i] = k16[(p * kvHeads + h) * d + i]!;
        vc[(h * n + p) * d + i] = v16[(p * kvHeads + h) * d + i]!;
      }
  const positions = Array.from({ length: n }, (_, i) => i);
  // The kernel rounds the scaled queries to f16 (an error of about 5e-4 of a score: large scores move
  // far); the reference takes the same rounding, so what is left is P's f16 rounding (5e-4 a term).
  const q16 = c.exactQ === true ? q : Float32Array.from(q, (x) => roundF16(Float32Array.of(x * scale))[0]! / scale);
  const want = attentionRef(q16, kc, vc, positions, { heads, kvHeads, d, capacity: n, window: c.window, scale, softcap: c.softcap });
  let worst = 0;
  for (let i = 0; i < out.length; i++) {
    // f16 P: about 3e-4 of a value at most; Q and P in two parts: f32's 1e-6 (3e-4 would fail it).
    const err = Math.abs(out[i]! - want[i]!) / (c.exactQ === true ? 2e-5 * Math.abs(want[i]!) + 2e-5 : 3e-3 * Math.abs(want[i]!) + 1e-3);
    if (!(err <= 1))
      assert.fail(
        `token ${Math.floor(i / (heads * d))}, head ${Math.floor(i / d) % heads}, dim ${i % d}: ${out[i]} instead of ${want[i]} (plain kernel: ${plain[i]})`,
      );
    worst = Math.max(worst, err);
  }
  assert.ok(worst > 0, 'the comparison compares something');
}

describe('flash attention for prefill on cooperative matrices', { skip: none }, () => {
  const base = { heads: 4, kvHeads: 2, window: 0, softcap: 0 };
  test('causal prompt in one pass: GQA 4 heads over 2, head_dim 64, partial blocks of rows and keys', () => {
    check({ ...base, n: 77, chunk: 77, capacity: 77, d: 64 }, 1);
  });
  test('chunked prefill: later chunks attend over the earlier ones; one head per kv head, 8 heads per kv head', () => {
    check({ ...base, n: 70, chunk: 33, capacity: 80, d: 64 }, 2);
    check({ ...base, heads: 2, kvHeads: 2, n: 40, chunk: 40, capacity: 40, d: 64 }, 3);
    check({ ...base, heads: 8, kvHeads: 1, n: 21, chunk: 21, capacity: 21, d: 64 }, 4);
  });
  test('sliding window of 8 over a ring of 16 slots in chunks of 9, with softcapping', () => {
    check({ ...base, n: 40, chunk: 9, capacity: 16, window: 8, softcap: 50, d: 64 }, 5);
  });
  test('scores that keep growing along the prompt: the reference moves and O is rescaled at many steps', () => {
    check({ ...base, n: 130, chunk: 130, capacity: 130, d: 64, qScale: 10, growing: true }, 6);
  });
  test('head_dim 128 and 256; with and without prefetch; Q and P in two f16 parts', () => {
    const t = coop!;
    const cases: [number, FlashTiles][] = [
      [128, flashTiles(info, 128)!],
      [256, flashTiles(info, 256)!], // one subgroup of rows on NVIDIA, two on lavapipe
      [64, { ...t, prefetch: !t.prefetch }],
      [64, { ...t, split: true }],
    ];
    for (const [d, tiles] of cases) {
      if (flashShared(tiles, d) > info.maxComputeSharedMemorySize) continue;
      const n = 2 * tiles.nsg * tiles.tm + 5;
      check({ ...base, n, chunk: n, capacity: n + 19, window: 20, softcap: 30, d, tiles }, d + tiles.nsg);
    }
  });
  test('over a q8 cache: chunked prefill with GQA, a sliding ring with softcapping, head_dim 128', () => {
    check({ ...base, n: 70, chunk: 33, capacity: 80, d: 64, kv: 'q8' }, 21);
    check({ ...base, n: 40, chunk: 9, capacity: 16, window: 8, softcap: 50, d: 64, kv: 'q8' }, 22);
    const t = flashTiles(info, 128)!;
    if (flashShared(t, 128) <= info.maxComputeSharedMemorySize) check({ ...base, n: 2 * t.nsg * t.tm + 5, chunk: 40, capacity: 200, d: 128, tiles: t, kv: 'q8' }, 23);
    assert.equal(flashProblem(gpu.device, gpu.alloc, coop!, 64, 'q8'), undefined, 'its check passes over q8');
  });
  test('Q and P in two f16 parts: as precise as f32 (the reference rounds neither; 2e-5 of a value)', () => {
    check({ ...base, n: 40, chunk: 40, capacity: 40, d: 64, qScale: 10, tiles: { ...coop!, split: true }, exactQ: true }, 11);
  });
  test('checked once per device; a layout made for half the subgroup size is caught', () => {
    assert.equal(flashProblem(gpu.device, gpu.alloc, coop!, 64), undefined);
    assert.match(flashProblem(gpu.device, gpu.alloc, { ...coop!, sg: coop!.sg / 2 }, 16) ?? '', /NaN instead of/);
  });
  test('one token, a head_dim the shapes do not divide, or the plain kind: no tiling (the plain kernel runs)', () => {
    const flash = new FlashAttention(gpu.device, gpu.alloc, { kind: 'coop' });
    const shape = { tokens: 5, heads: 4, kvHeads: 2, headDim: 64, capacity: 64, window: 0, scale: 1, softcap: 0 };
    assert.notEqual(flash.tilesFor(shape), null);
    assert.equal(flash.tilesFor({ ...shape, tokens: 1 }), null);
    assert.equal(flash.tilesFor({ ...shape, headDim: 36 }), null);
    assert.equal(new FlashAttention(gpu.device, gpu.alloc, { kind: 'plain' }).tilesFor(shape), null);
    assert.match(flash.describe(64), /flash attention on cooperative matrices/);
  });
});

test('the kind by default and by UNICORN_ATTENTION; UNICORN_ATTENTION_TILE is checked', () => {
  assert.equal(attentionKind(info, ''), coop !== null && info.type !== 'cpu' ? 'coop' : 'plain');
  assert.throws(() => attentionKind(info, 'fast'), /not coop or plain/);
  if (coop === null) assert.throws(() => attentionKind(info, 'coop'), /no usable cooperative matrices/);
  const nv = {
    ...info,
    name: 'NVIDIA H200',
    subgroupSize: 32,
    maxComputeSharedMemorySize: 49152,
    maxComputeWorkGroupInvocations: 1024,
    cooperativeMatrix: true,
    coopMatShapes: [{ m: 16, n: 16, k: 16, a: 'f16', b: 'f16', c: 'f32', result: 'f32' }],
  } as const;
  const shape = { tm: 16, tn: 16, tk: 16, sg: 32 };
  assert.deepEqual(flashTiles(nv, 128, ''), { ...shape, nsg: 4, bc: 32, prefetch: true, split: false });
  assert.deepEqual(flashTiles(nv, 256, ''), { ...shape, nsg: 1, bc: 32, prefetch: false, split: false });
  assert.deepEqual(flashTiles(nv, 128, '2,32'), { ...shape, nsg: 2, bc: 32, prefetch: true, split: false });
  assert.deepEqual(flashTiles(nv, 128, '2,32,1,1'), { ...shape, nsg: 2, bc: 32, prefetch: true, split: true });
  assert.throws(() => flashTiles(nv, 128, '4,32,1'), /is not nsg,bc/);
  assert.throws(() => flashTiles(nv, 128, '4,32,2,0'), /is not nsg,bc/);
  assert.throws(() => flashTiles(nv, 256, '4,64'), /does not fit NVIDIA H200 at head_dim 256: \d+ bytes of shared memory/);
  assert.throws(() => flashTiles(nv, 128, '4,24'), /not a multiple of the subgroup/);
  assert.equal(flashTiles({ ...nv, cooperativeMatrix: false }, 128, ''), null);
});
