/**
 * Fuzzes the safetensors reader with mutations of valid files. Every case must either parse into a
 * header whose tensors lie inside the file and cover its data exactly, or throw SafetensorsError:
 * no other exception, no crash, no allocation sized by a lie (the header length is checked against
 * the file size first). Seed and count: UNICORN_FUZZ_SEED, UNICORN_FUZZ_CASES.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SafetensorsError } from '../../../src/engine/errors.js';
import { SafetensorsFile, parseBuffer, type SafetensorsHeader } from '../../../src/engine/formats/safetensors.js';
import { FIXTURES, modelFixture, scratchDir } from '../../support/paths.js';
import { rawFile } from '../../support/st-bytes.js';
import { writeInterop } from '../../support/write-interop.js';

const CASES = Number(process.env['UNICORN_FUZZ_CASES'] ?? 20_000);
const SEED = Number(process.env['UNICORN_FUZZ_SEED'] ?? Date.now() % 2 ** 31);

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function headerOf(bytes: Uint8Array): { json: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), data: bytes.subarray(8 + n) };
}

type Mutation = (b: Uint8Array, r: () => number) => Uint8Array;
const int = (r: () => number, n: number) => Math.floor(r() * n);
const pickKey = (obj: object, r: () => number) => {
  const ks = Object.keys(obj).filter((k) => k !== '__metadata__');
  return ks[int(r, ks.length)];
};

const MUTATIONS: Record<string, Mutation> = {
  truncate: (b, r) => b.slice(0, int(r, b.byteLength)),
  extend: (b, r) => {
    const out = new Uint8Array(b.byteLength + 1 + int(r, 64));
    out.set(b);
    return out;
  },
  bitflips: (b, r) => {
    const out = b.slice();
    const inHeader = Math.min(out.byteLength, 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)));
    for (let k = 1 + int(r, 8); k > 0; k--) {
      const i = int(r, r() < 0.8 ? inHeader : out.byteLength);
      out[i]! ^= 1 << int(r, 8);
    }
    return out;
  },
  lengthLie: (b, r) => {
    const out = b.slice();
    const dv = new DataView(out.buffer);
    const n = dv.getBigUint64(0, true);
    const choices = [
      0n,
      1n,
      n - 1n,
      n + 1n,
      n + BigInt(int(r, 1000)),
      BigInt(out.byteLength),
      2n ** 64n - 1n,
      2n ** 53n,
      BigInt(int(r, 2 ** 31)),
      100_000_001n,
    ];
    dv.setBigUint64(0, BigInt.asUintN(64, choices[int(r, choices.length)]!), true);
    return out;
  },
  offsets: (b, r) => {
    const { json, data } = headerOf(b);
    const k = pickKey(json, r);
    if (k === undefined) return b;
    const o = json[k]!.data_offsets;
    const edits = [
      () => {
        o[0] = o[0]! + 1 - int(r, 3);
      },
      () => {
        o[1] = o[1]! + int(r, 1 << 20);
      },
      () => {
        o[0] = -1;
      },
      () => {
        o[1] = 2 ** 60;
      },
      () => {
        const other = json[pickKey(json, r)!]!;
        other.data_offsets = [...o];
      },
      () => {
        o.push(3);
      },
      () => {
        json[k]!.data_offsets = 'x' as never;
      },
    ];
    edits[int(r, edits.length)]!();
    return rawFile(json, data);
  },
  shapes: (b, r) => {
    const { json, data } = headerOf(b);
    const k = pickKey(json, r);
    if (k === undefined) return b;
    const values = [2 ** 53, 2 ** 64, -1, 1.5, 0, 1e308, 'a', null, 2 ** 31, 2 ** 32 + 1];
    const shape = json[k]!.shape;
    if (shape.length > 0 && r() < 0.7) shape[int(r, shape.length)] = values[int(r, values.length)] as number;
    else json[k]!.shape = Array.from({ length: 1 + int(r, 40) }, () => 2 ** int(r, 30));
    return rawFile(json, data);
  },
  dtypes: (b, r) => {
    const { json, data } = headerOf(b);
    const k = pickKey(json, r);
    if (k === undefined) return b;
    json[k]!.dtype = ['F32', 'I8', 'F64', 'f32', 'F128', '', 'BOOL', 'F8_E4M3'][int(r, 8)]!;
    return rawFile(json, data);
  },
  duplicateKey: (b, r) => {
    const { json, data } = headerOf(b);
    const k = pickKey(json, r);
    if (k === undefined) return b;
    const text = JSON.stringify(json);
    return rawFile(`${text.slice(0, -1)},${JSON.stringify(k)}:${JSON.stringify(json[k])}}`, data);
  },
  deepJson: (_b, r) => {
    // Mostly moderate depths, now and then an extreme one; half are closed (valid JSON).
    const depth = 1 + int(r, r() < 0.02 ? 200_000 : 5_000);
    const arrays = r() < 0.5;
    const open = arrays ? '['.repeat(depth) : '{"a":'.repeat(depth);
    const close = r() < 0.5 ? '' : arrays ? `${']'.repeat(depth)}}` : `1${'}'.repeat(depth)}}`;
    return rawFile(`{"x":${open}${close}`, int(r, 16));
  },
  hugeJson: (_b, r) => {
    const n = 1 + int(r, r() < 0.02 ? 20_000 : 500);
    const entries = Array.from({ length: n }, (_, i) => `"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`);
    return rawFile(`{${entries.join(',')}}`, n - int(r, 2));
  },
  badUtf8: (b, r) => {
    const out = b.slice();
    const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    const bad = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]][int(r, 5)]!;
    const at = 9 + int(r, Math.max(1, n - bad.length - 1));
    out.set(bad.slice(0, Math.max(0, out.byteLength - at)), at);
    return out;
  },
  garbage: (_b, r) => Uint8Array.from({ length: int(r, 256) }, () => int(r, 256)),
};

/** What an accepted file must satisfy. */
function checkInvariants(h: SafetensorsHeader, size: number): void {
  let cursor = h.dataOffset;
  for (const t of h.tensors) {
    assert.equal(t.fileOffset, cursor);
    assert.ok(t.byteLength >= 0 && t.fileOffset + t.byteLength <= size);
    cursor += t.byteLength;
  }
  assert.equal(cursor, size);
}

test(`fuzz: ${CASES} mutated files give a valid header or a SafetensorsError (seed ${SEED})`, (t) => {
  const dir = scratchDir('fuzz');
  writeInterop(path.join(dir, 'w'));
  const bases = [
    path.join(FIXTURES, 'dtypes.safetensors'),
    path.join(dir, 'w', 'all-dtypes.safetensors'),
    path.join(dir, 'w', 'streamed.safetensors'),
    path.join(modelFixture('gemma3-mm'), 'model.safetensors'),
  ].map((p) => new Uint8Array(fs.readFileSync(p)));
  const r = rng(SEED);
  const names = Object.keys(MUTATIONS);
  const outcome: Record<string, { ok: number; rejected: number }> = Object.fromEntries(names.map((n) => [n, { ok: 0, rejected: 0 }]));
  const file = path.join(dir, 'case.safetensors');
  for (let i = 0; i < CASES; i++) {
    const m = names[i % names.length]!;
    // The large model file only now and then: it is slower to copy and re-serialise.
    const base = bases[r() < 0.05 ? 3 : int(r, 3)]!;
    const bytes = MUTATIONS[m]!(base, r);
    const viaFile = i % 25 === 0;
    try {
      if (viaFile) {
        fs.writeFileSync(file, bytes);
        const f = SafetensorsFile.open(file);
        try {
          checkInvariants(f, bytes.byteLength);
          for (const ti of f.tensors) f.readAll(ti.name);
        } finally {
          f.close();
        }
      } else {
        checkInvariants(parseBuffer('case.safetensors', bytes), bytes.byteLength);
      }
      outcome[m]!.ok++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) {
        fs.writeFileSync(path.join(dir, 'crash.safetensors'), bytes);
        assert.fail(
          `case ${i} (${m}, seed ${SEED}) threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}; input kept in ${dir}/crash.safetensors`,
        );
      }
      outcome[m]!.rejected++;
    }
  }
  t.diagnostic(`outcomes (accepted/rejected): ${names.map((n) => `${n} ${outcome[n]!.ok}/${outcome[n]!.rejected}`).join(', ')}`);
  // Every mutation family must actually produce rejections, or it tests nothing.
  for (const n of names) assert.ok(outcome[n]!.rejected > 0, `${n} never produced an invalid file`);
  fs.rmSync(dir, { recursive: true });
});
