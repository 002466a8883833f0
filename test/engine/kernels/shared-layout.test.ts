/**
 * The cooperative-matrix shaders' shared arrays (and decode attention's) are each a whole number of 16
 * bytes at every tiling the engine picks. NVIDIA's driver 580 places shared arrays back to back without rounding their sizes up,
 * and cooperative-matrix loads and stores from an array that does not start on 16 bytes computed wrong
 * there (flash attention's 4-byte unused `ql` put every tiling off); lavapipe computes right either way,
 * so only this reading of the source catches it here. Sizes are evaluated from the shader's own
 * declarations with the specialization constants the host would pass.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { flashTiles } from '../../../src/engine/kernels/attention-coop.js';
import { coopTiles } from '../../../src/engine/kernels/matmul.js';
import { KERNELS } from '../../../src/engine/kernels/table.js';
import type { DeviceInfo } from '../../../src/engine/vulkan/device.js';

const shaders = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shaders');
const BYTES: Record<string, number> = { vec2: 8, f16vec2: 4, float16_t: 2, float: 4, uint: 4, int: 4, vec4: 16, uvec4: 16, f16vec4: 8 };

/** Integer arithmetic over + - * / % and parentheses, as GLSL's uint does it. */
function evaluate(expr: string, names: Map<string, number>): number {
  const tokens = expr.match(/\d+u?|[A-Za-z_]\w*|[-+*/%()]/g) ?? [];
  if (tokens.join('') !== expr.replace(/\s+/g, '')) throw new Error(`'${expr}' has what this evaluator does not read`);
  let i = 0;
  const atom = (): number => {
    const t = tokens[i++];
    if (t === '(') {
      const v = sum();
      if (tokens[i++] !== ')') throw new Error(`unbalanced '${expr}'`);
      return v;
    }
    if (t === undefined) throw new Error(`unexpected end of '${expr}'`);
    if (/^\d/.test(t)) return Number.parseInt(t, 10);
    const v = names.get(t);
    if (v === undefined) throw new Error(`unknown name ${t} in '${expr}'`);
    return v;
  };
  const product = (): number => {
    let v = atom();
    while (tokens[i] === '*' || tokens[i] === '/' || tokens[i] === '%') {
      const op = tokens[i++];
      const r = atom();
      v = op === '*' ? v * r : op === '/' ? Math.floor(v / r) : v % r;
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (tokens[i] === '+' || tokens[i] === '-') v = tokens[i++] === '+' ? v + product() : v - product();
    return v;
  };
  const v = sum();
  if (i !== tokens.length) throw new Error(`'${expr}' read only in part`);
  return v;
}

/** Each shared array's size in bytes, for one set of specialization constants (by the table's names). */
function sharedSizes(file: string, spec: readonly string[], values: Record<string, number | boolean>): Map<string, number> {
  const names = new Map<string, number>();
  const sizes = new Map<string, number>();
  for (const raw of fs.readFileSync(path.join(shaders, file), 'utf8').split('\n')) {
    const line = raw.replace(/\/\/.*$/, '').trimEnd(); // top level only: declarations in functions are indented
    let m = /^layout\(constant_id = (\d+)\) const uint (\w+) = \d+u?;/.exec(line);
    if (m !== null) {
      const v = values[spec[Number(m[1])]!];
      assert.notEqual(v, undefined, `${file}: constant ${m[2]} (${spec[Number(m[1])]}) has no value`);
      names.set(m[2]!, Number(v));
      continue;
    }
    m = /^const uint (\w+) = ([^;]+);/.exec(line) ?? /^#define (\w+) (\d+u?)$/.exec(line);
    if (m !== null) {
      names.set(m[1]!, evaluate(m[2]!, names));
      continue;
    }
    m = /^shared (\w+) (\w+)\[([^\]]+)\];/.exec(line);
    if (m !== null) {
      const bytes = BYTES[m[1]!];
      assert.notEqual(bytes, undefined, `${file}: shared type ${m[1]} not known to this test`);
      sizes.set(m[2]!, bytes! * evaluate(m[3]!, names));
    }
  }
  const declared = (fs.readFileSync(path.join(shaders, file), 'utf8').match(/^shared /gm) ?? []).length;
  assert.equal(sizes.size, declared, `${file}: ${sizes.size} of its ${declared} shared declarations read`);
  return sizes;
}

const base: DeviceInfo = {
  name: 'test',
  type: 'discrete',
  subgroupSize: 32,
  maxComputeSharedMemorySize: 49152,
  maxComputeWorkGroupInvocations: 1024,
  cooperativeMatrix: true,
} as unknown as DeviceInfo;
/** NVIDIA's 16 x 16 x 16 at subgroups of 32, lavapipe's 8 x 8 x 8 at 4, 8 and 16, an AMD-like 16 x 16 x 16 at 64. */
const devices: DeviceInfo[] = [
  { ...base, coopMatShapes: [{ m: 16, n: 16, k: 16, a: 'f16', b: 'f16', c: 'f32', result: 'f32' }] },
  ...[4, 8, 16].map((sg) => ({
    ...base,
    subgroupSize: sg,
    maxComputeSharedMemorySize: 65536,
    coopMatShapes: [{ m: 8, n: 8, k: 8, a: 'f16', b: 'f16', c: 'f32', result: 'f32' }],
  })),
  { ...base, subgroupSize: 64, maxComputeSharedMemorySize: 65536, coopMatShapes: [{ m: 16, n: 16, k: 16, a: 'f16', b: 'f16', c: 'f32', result: 'f32' }] },
] as DeviceInfo[];

test('flash attention: every shared array a whole number of 16 bytes at every tiling it picks', () => {
  let checked = 0;
  for (const info of devices) {
    for (const hd of [64, 128, 256]) {
      const t0 = flashTiles(info, hd, '');
      if (t0 === null) continue;
      for (const t of [t0, { ...t0, nsg: 1 }, { ...t0, nsg: 2 }, { ...t0, nsg: 3 }, { ...t0, split: !t0.split }, { ...t0, prefetch: !t0.prefetch }]) {
        const values: Record<string, number | boolean> = {
          workgroup: t.nsg * t.sg,
          tm: t.tm,
          tn: t.tn,
          tk: t.tk,
          nsg: t.nsg,
          bc: t.bc,
          hd,
          sg: t.sg,
          prefetch: t.prefetch,
          qsplit: t.split,
        };
        for (const [name, bytes] of sharedSizes(KERNELS.attention_coop.source, KERNELS.attention_coop.spec, values)) {
          assert.equal(bytes % 16, 0, `${name}: ${bytes} bytes at ${JSON.stringify(values)}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 100, `${checked} arrays checked`);
});

test('the cooperative matmul: every shared array a whole number of 16 bytes at every tiling it picks', () => {
  let checked = 0;
  for (const info of devices) {
    const t = coopTiles(info, '');
    if (t === null) continue;
    for (const group of [32, 64, 128]) {
      const values: Record<string, number> = { workgroup: (t.bm / t.wm) * (t.bn / t.wn) * t.sg, ...t, group };
      for (const [name, bytes] of sharedSizes(KERNELS.matmul_coop.source, KERNELS.matmul_coop.spec, values)) {
        assert.equal(bytes % 16, 0, `${name}: ${bytes} bytes at ${JSON.stringify(values)}`);
        checked++;
      }
    }
  }
  assert.ok(checked >= 15, `${checked} arrays checked`);
});

test('decode attention with folded heads: every shared array a whole number of 16 bytes', () => {
  let checked = 0;
  for (const sg of [4, 8, 16, 32, 64]) {
    for (const hd of [64, 128, 256]) {
      for (const g of [1, 2, 3, 4, 7, 8]) {
        for (const nsg of [1, 2, 4]) {
          const values = { workgroup: nsg * sg, sg, hd, g, nsg };
          for (const [name, bytes] of sharedSizes(KERNELS.attention_decode.source, KERNELS.attention_decode.spec, values)) {
            assert.equal(bytes % 16, 0, `${name}: ${bytes} bytes at ${JSON.stringify(values)}`);
            checked++;
          }
        }
      }
    }
  }
  assert.ok(checked > 1000, `${checked} arrays checked`);
});

test('the evaluator: GLSL integer arithmetic', () => {
  const names = new Map([['A', 7]]);
  assert.equal(evaluate('(A + 3u) / 4u * 4u', names), 8);
  assert.equal(evaluate('A * 2u - 1u + A % 4u', names), 16);
  assert.throws(() => evaluate('B + 1', names), /unknown name B/);
  assert.throws(() => evaluate('A != 0u ? 256u : 1u', names), /does not read/);
  assert.throws(() => evaluate('(A + 1u', names), /unbalanced/);
  assert.throws(() => evaluate('A 1u', names), /read only in part/);
});
