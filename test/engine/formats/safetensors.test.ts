import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeFailure } from '../../../src/engine/formats/atomic.js';
import { Checkpoint, INDEX_FILE } from '../../../src/engine/formats/checkpoint.js';
import { SafetensorsFile, parseBuffer, readExactly } from '../../../src/engine/formats/safetensors.js';
import { writeFully } from '../../../src/engine/formats/io.js';
import { SafetensorsWriter, encodeHeader, writeSafetensors } from '../../../src/engine/formats/safetensors-writer.js';
import { SafetensorsError, WriteError } from '../../../src/engine/errors.js';
import { FIXTURES, ROOT, modelFixture, scratchDir } from '../../support/paths.js';
import { rawFile } from '../../support/st-bytes.js';
import { interopSpecs, writeInterop } from '../../support/write-interop.js';

describe('reader', () => {
  test('reads every dtype from a file written by Python safetensors', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'dtypes.safetensors'));
    assert.equal(f.metadata['made_by'], 'python safetensors');
    const dv = (name: string) => {
      const b = f.readAll(name);
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    };
    assert.deepEqual(f.tensor('f32').shape, [2, 2]);
    assert.equal(dv('f32').getFloat32(8, true), 3.25);
    assert.equal(dv('f64').getFloat64(8, true), -2.25);
    assert.equal(dv('i64').getBigInt64(0, true), -(2n ** 40n));
    assert.equal(dv('i16').getInt16(0, true), -32768);
    assert.deepEqual([...f.readAll('u8')], [0, 255]);
    assert.deepEqual([...f.readAll('bool')], [1, 0, 1]);
    assert.equal(f.tensor('bf16').dtype, 'BF16');
    assert.equal(dv('bf16').getUint16(0, true), 0x3f80);
    assert.equal(f.tensor('f8_e4m3').dtype, 'F8_E4M3');
    assert.equal(f.tensor('f8_e5m2').dtype, 'F8_E5M2');
    assert.deepEqual(f.tensor('empty').shape, [0, 4]);
    assert.equal(f.tensor('empty').byteLength, 0);
    assert.deepEqual(f.tensor('scalar').shape, []);
    assert.equal(dv('scalar').getFloat32(0, true), 2.5);
    f.close();
  });

  test('reads a byte range of a tensor into a caller buffer at an offset', () => {
    const f = SafetensorsFile.open(path.join(modelFixture('llama'), 'model.safetensors'));
    const name = 'model.layers.0.mlp.down_proj.weight';
    const whole = f.readAll(name);
    const dst = new Uint8Array(100);
    assert.equal(f.read(name, dst, 10, 64, 50), 50);
    assert.deepEqual(dst.subarray(10, 60), whole.subarray(64, 114));
    assert.throws(() => f.read(name, dst, 0, whole.byteLength - 10, 20), SafetensorsError);
    assert.throws(() => f.read(name, dst, 60, 0, 50), RangeError);
    assert.throws(() => f.read('nope', dst), /'nope': not in this file/);
    f.close();
    assert.throws(() => f.read(name, dst, 0, 0, 1), /closed/);
  });

  const tensor = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, Uint8Array, RegExp][] = [
    ['too short', new Uint8Array(5), /too short/],
    ['header longer than the file', rawFile({ a: tensor }, 8, { lengthOverride: 10_000n }), /larger than the file/],
    ['header length over the limit', rawFile({}, 0, { lengthOverride: 2n ** 62n }), /exceeds the 100000000-byte limit/],
    ['invalid UTF-8', rawFile(new TextDecoder('latin1').decode(new Uint8Array([0x7b, 0xff, 0x7d]))).map((b, i) => (i === 9 ? 0xff : b)), /not valid UTF-8/],
    ['not JSON', rawFile('{"a": '), /not valid JSON/],
    ['array header', rawFile('[1,2]'), /does not start with a JSON object/],
    [
      'duplicate tensor',
      rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
      /'a': appears twice/,
    ],
    ['unknown dtype', rawFile({ a: { ...tensor, dtype: 'F128' } }, 8), /unknown dtype "F128"/],
    ['negative shape', rawFile({ a: { ...tensor, shape: [-2] } }, 8), /shape is not a list/],
    ['shape/span mismatch', rawFile({ a: { ...tensor, shape: [3] } }, 8), /needs 12 bytes but data_offsets span 8/],
    ['huge shape overflowing to a match', rawFile({ a: { ...tensor, shape: [2 ** 52, 2 ** 52, 0.5] } }, 8), /shape is not a list/],
    ['huge shape', rawFile({ a: { ...tensor, shape: [2 ** 40, 2 ** 40] } }, 8), /needs \d+ bytes/],
    ['end before begin', rawFile({ a: { ...tensor, data_offsets: [8, 0] } }, 8), /end before begin/],
    ['out of file', rawFile({ a: { ...tensor, data_offsets: [0, 8] } }, 4), /reach past the end of the file/],
    ['overlap', rawFile({ a: tensor, b: { ...tensor, data_offsets: [4, 12] } }, 12), /overlaps/],
    ['gap', rawFile({ a: { ...tensor, data_offsets: [4, 12] } }, 12), /gap of 4 bytes/],
    ['trailing bytes', rawFile({ a: tensor }, 9), /1 bytes after the last tensor/],
    ['metadata not strings', rawFile({ __metadata__: { k: 1 }, a: tensor }, 8), /__metadata__ value for 'k'/],
    ['entry not an object', rawFile({ a: 5 }), /'a': entry is not an object/],
  ];
  for (const [what, bytes, message] of cases) {
    test(`rejects a file with ${what}, naming the file`, () => {
      assert.throws(
        () => parseBuffer('bad.safetensors', bytes),
        (e: unknown) => e instanceof SafetensorsError && message.test(e.message) && e.message.startsWith('bad.safetensors: '),
      );
      const dir = scratchDir('bad');
      const p = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(p, bytes);
      assert.throws(
        () => SafetensorsFile.open(p),
        (e: unknown) => e instanceof SafetensorsError && message.test(e.message),
      );
      fs.rmSync(dir, { recursive: true });
    });
  }
});

describe('beyond 2 GiB and 4 GiB', () => {
  // A sparse file (holes: almost no disk) holding one 4.5 GiB tensor and a small one after it, with
  // marker bytes written at the file's 2 GiB and 4 GiB marks. A Gemma 3 27B embedding table is 2.8 GB:
  // one read of it is past what a single fs.readSync takes (2^31 - 1 bytes).
  const G2 = 2 ** 31;
  const G4 = 2 ** 32;
  function sparseFile(): { file: string; dir: string; dataOffset: number } {
    const dir = scratchDir('sparse4g');
    const file = path.join(dir, 'big.safetensors');
    const big = G4 + G2 / 4;
    const header = encodeHeader([
      { name: 'big', dtype: 'U8', shape: [big] },
      { name: 'tail', dtype: 'F32', shape: [4] },
    ]);
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, header, 0, header.byteLength, 0);
    fs.ftruncateSync(fd, header.byteLength + big + 16);
    const mark = (at: number) =>
      fs.writeSync(
        fd,
        Uint8Array.from({ length: 16 }, (_, i) => (at / 2 ** 28 + i * 7 + 1) & 0xff),
        0,
        16,
        at - 8,
      );
    mark(G2);
    mark(G4);
    fs.writeSync(fd, new Uint8Array(new Float32Array([1.5, -2, 3.25, 4e9]).buffer), 0, 16, header.byteLength + big);
    fs.closeSync(fd);
    return { file, dir, dataOffset: header.byteLength };
  }
  const marker = (at: number) => Uint8Array.from({ length: 16 }, (_, i) => (at / 2 ** 28 + i * 7 + 1) & 0xff);

  test('one read of 2 GiB + 32 bytes across the 2 GiB and 4 GiB marks returns the bytes written there; a tensor past 4 GiB reads', () => {
    const { file, dir, dataOffset } = sparseFile();
    const f = SafetensorsFile.open(file);
    try {
      assert.equal(f.tensor('big').byteLength, G4 + G2 / 4);
      const start = G2 - 16 - dataOffset; // tensor-relative offset of file position 2 GiB - 16
      const dst = new Uint8Array(G2 + 32);
      assert.equal(f.read('big', dst, 0, start, dst.byteLength), dst.byteLength);
      // File position p is dst[p - (2 GiB - 16)].
      assert.deepEqual(dst.subarray(8, 24), marker(G2));
      assert.deepEqual(dst.subarray(G2 + 8, G2 + 24), marker(G4));
      assert.deepEqual(dst.subarray(0, 8), new Uint8Array(8));
      assert.deepEqual(dst.subarray(G2 + 24, G2 + 32), new Uint8Array(8));
      assert.deepEqual([...new Float32Array(f.readAll('tail').slice().buffer)], [1.5, -2, 3.25, 4e9]);
      // The same bytes through reads of 7 bytes at a time: the piecewise loop itself.
      const small = new Uint8Array(48);
      readExactly(fs.openSync(file, 'r'), file, small, 0, 48, G4 - 24, 'big', 7);
      assert.deepEqual(small.subarray(16, 32), marker(G4));
    } finally {
      f.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('writes go out whole in bounded pieces, at positions past 4 GiB', () => {
    const dir = scratchDir('write4g');
    const file = path.join(dir, 'w.bin');
    const fd = fs.openSync(file, 'w+');
    try {
      // Pieces of 5 bytes, as the loop takes a chunk larger than its piece (2 GiB and more in real use).
      writeFully(fd, marker(G4), 0, 16, G4 + 3, 5);
      assert.equal(fs.fstatSync(fd).size, G4 + 19);
      const back = new Uint8Array(16);
      fs.readSync(fd, back, 0, 16, G4 + 3);
      assert.deepEqual(back, marker(G4));
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writer', () => {
  test('round-trips through our reader, header padded to 8 bytes', () => {
    const dir = scratchDir('rt');
    writeInterop(dir);
    const specs = interopSpecs();
    for (const [file, spec] of Object.entries(specs)) {
      const f = SafetensorsFile.open(path.join(dir, file));
      assert.equal((8 + f.headerLength) % 8, 0);
      assert.deepEqual({ ...f.metadata }, spec.metadata);
      assert.deepEqual(
        f.tensors.map((t) => t.name),
        spec.tensors.map((t) => t.name),
      );
      for (const t of spec.tensors) assert.deepEqual(f.tensor(t.name).shape, t.shape);
      f.close();
    }
    const f = SafetensorsFile.open(path.join(dir, 'all-dtypes.safetensors'));
    assert.deepEqual([...new Int8Array(f.readAll('i8').buffer)], [-128, 127, 0, -1]);
    f.close();
    fs.rmSync(dir, { recursive: true });
  });

  test('refuses wrong sizes and order, and leaves nothing behind on abort or error', () => {
    const dir = scratchDir('w');
    const p = path.join(dir, 'out.safetensors');
    const specs = [
      { name: 'a', dtype: 'F32' as const, shape: [2] },
      { name: 'b', dtype: 'U8' as const, shape: [3] },
    ];
    const w = new SafetensorsWriter(p, specs);
    assert.throws(() => w.writeTensor('b', new Uint8Array(3)), /expected tensor 'a' next/);
    w.write(new Uint8Array(4));
    assert.throws(() => w.write(new Uint8Array(5)), /takes 4 more bytes, got 5/);
    assert.throws(() => w.commit(), /not fully written; nothing was saved/);
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.throws(() => writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(3) }]), WriteError);
    assert.throws(() => encodeHeader([{ name: '__metadata__', dtype: 'F32', shape: [1] }]), /reserved/);
    assert.deepEqual(fs.readdirSync(dir), []);
    fs.rmSync(dir, { recursive: true });
  });

  test('disk full and permission errors become one clear WriteError', () => {
    const full = writeFailure('/x/out.safetensors', Object.assign(new Error('no space'), { code: 'ENOSPC' }));
    assert.match(full.message, /disk full while writing \/x\/out.safetensors; nothing was left behind/);
    assert.match(writeFailure('/x', Object.assign(new Error('perm'), { code: 'EACCES' })).message, /no permission/);
  });

  test('Ctrl-C in the middle of a write leaves no file, final or temporary', async () => {
    const dir = scratchDir('sigint');
    const script = path.join(dir, 'child.mjs');
    const dist = (m: string) => pathToFileURL(path.join(ROOT, 'dist', 'src', 'engine', 'formats', m)).href;
    fs.writeFileSync(
      script,
      `
      import { exitCleanlyOnSignals } from '${dist('atomic.js')}';
      import { SafetensorsWriter } from '${dist('safetensors-writer.js')}';
      exitCleanlyOnSignals();
      const w = new SafetensorsWriter(${JSON.stringify(path.join(dir, 'out.safetensors'))}, [{ name: 'big', dtype: 'F32', shape: [1 << 20] }]);
      w.write(new Uint8Array(1 << 20));
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    assert.ok(
      fs.readdirSync(dir).some((f) => f.includes('.tmp-')),
      'a temporary file exists while writing',
    );
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 130);
    assert.deepEqual(fs.readdirSync(dir), ['child.mjs']);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('sharded checkpoints', () => {
  /** Splits the llama fixture into two shards with an index, for the tests below to damage. */
  function shard(dir: string, mutateIndex?: (m: Record<string, string>) => void): void {
    const src = SafetensorsFile.open(path.join(modelFixture('llama'), 'model.safetensors'));
    const names = src.tensors.map((t) => t.name);
    const half = Math.floor(names.length / 2);
    const parts = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    parts.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(
        path.join(dir, file),
        part.map((n) => ({ name: n, dtype: src.tensor(n).dtype, shape: src.tensor(n).shape, data: src.readAll(n) })),
      );
      for (const n of part) weightMap[n] = file;
    });
    src.close();
    mutateIndex?.(weightMap);
    fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.copyFileSync(path.join(modelFixture('llama'), 'config.json'), path.join(dir, 'config.json'));
  }

  test('opens shards through the index, every tensor once', () => {
    const dir = scratchDir('shards');
    shard(dir);
    const c = Checkpoint.open(dir);
    assert.equal(c.files.length, 2);
    const single = SafetensorsFile.open(path.join(modelFixture('llama'), 'model.safetensors'));
    assert.equal(c.tensors.size, single.tensors.length);
    const n = 'model.layers.2.self_attn.v_proj.weight';
    const t = c.tensor(n);
    const out = new Uint8Array(t.byteLength);
    t.file.read(n, out);
    assert.deepEqual(out, single.readAll(n));
    single.close();
    c.close();
    fs.rmSync(dir, { recursive: true });
  });

  const broken: [string, (m: Record<string, string>) => void, RegExp][] = [
    [
      'a missing shard',
      (m) => {
        m['model.norm.weight'] = 'model-00003-of-00003.safetensors';
      },
      /model-00003-of-00003.safetensors: is missing/,
    ],
    [
      'a tensor listed in the wrong shard',
      (m) => {
        m['model.norm.weight'] =
          m['model.norm.weight'] === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
      },
      /'model.norm.weight': is listed in .* but stored in/,
    ],
    [
      'a tensor in no shard',
      (m) => {
        m['model.extra.weight'] = 'model-00001-of-00002.safetensors';
      },
      /'model.extra.weight': is listed in .* but is in no shard/,
    ],
    [
      'a stored tensor missing from the index',
      (m) => {
        delete m['model.norm.weight'];
      },
      /'model.norm.weight': is stored here but not listed/,
    ],
    [
      'a shard path outside the directory',
      (m) => {
        m['model.norm.weight'] = '../evil.safetensors';
      },
      /not a .safetensors file name in this directory/,
    ],
  ];
  for (const [what, mutate, message] of broken) {
    test(`rejects ${what}`, () => {
      const dir = scratchDir('shards-bad');
      shard(dir, mutate);
      assert.throws(
        () => Checkpoint.open(dir),
        (e: unknown) => e instanceof SafetensorsError && message.test(e.message),
      );
      fs.rmSync(dir, { recursive: true });
    });
  }

  test('a directory with several files and no index, or with none, is a clear error', () => {
    const dir = scratchDir('noindex');
    assert.throws(() => Checkpoint.open(dir), /holds no .safetensors file/);
    shard(dir);
    fs.rmSync(path.join(dir, INDEX_FILE));
    assert.throws(() => Checkpoint.open(dir), /holds 2 .safetensors files but no model.safetensors.index.json/);
    fs.rmSync(dir, { recursive: true });
  });
});
