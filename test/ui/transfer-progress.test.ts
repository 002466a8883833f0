import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TransferProgress, transferLine } from '../../src/ui/transfer-progress.js';

function fakeStream(columns = 200) {
  const writes: string[] = [];
  return { writes, stream: { write: (s: string) => (writes.push(s), true), columns, isTTY: true } as unknown as NodeJS.WriteStream };
}

const FILE = { file: 'model.safetensors', size: 10_000_000, etag: 'e'.repeat(64), lfs: true };

describe('the download progress display', () => {
  test('a line per file in flight and a total, with bytes, MB/s and ETA, redrawn in place; cleared at the end', () => {
    const { writes, stream } = fakeStream();
    const p = new TransferProgress(stream, true);
    // config.json comes before the total is known; the total then counts only what is left.
    p.onEvent({ kind: 'start', file: 'config.json', size: 100, from: 0 });
    p.onEvent({ kind: 'progress', file: 'config.json', done: 100, size: 100 });
    p.onEvent({ kind: 'done', file: 'config.json', size: 100 });
    p.onEvent({ kind: 'resolved', commit: 'c'.repeat(40), files: [FILE], toFetch: 1, bytes: 10_000_000 });
    p.onEvent({ kind: 'start', file: FILE.file, size: FILE.size, from: 0 });
    p.onEvent({ kind: 'progress', file: FILE.file, done: 10_000_000, size: FILE.size });
    p.onEvent({ kind: 'done', file: FILE.file, size: FILE.size });
    const text = writes.join('');
    assert.match(text, /total \(1 of 1 files\) {2}10\.0 MB \/ 10\.0 MB/);
    assert.match(text, / {2}model\.safetensors {2}0 B \/ 10\.0 MB · 0\.0 MB\/s · ETA -\n/);
    assert.match(text, /total \(0 of 1 files\) {2}0 B \/ 10\.0 MB/);
    assert.match(text, /\x1b\[2F\x1b\[J/, 'the two lines drawn are redrawn in place');
    p.finish();
    assert.ok(writes.at(-1)!.startsWith('\x1b['), 'finish clears the display');
  });

  test('rates and ETA count only the bytes of this run (a resumed file starts at its partial size)', () => {
    assert.equal(transferLine('f', 6_000_000, 10_000_000, 4_000_000, 2), 'f  6.00 MB / 10.0 MB · 1.0 MB/s · ETA 4 s');
    assert.equal(transferLine('f', 1_000_000, 7_201_000_000, 0, 1), 'f  1.00 MB / 7.20 GB · 1.0 MB/s · ETA 2 h 0 min');
  });

  test('off a terminal nothing is drawn but a retry', () => {
    const { writes, stream } = fakeStream();
    const p = new TransferProgress(stream, false);
    p.onEvent({ kind: 'resolved', commit: 'c'.repeat(40), files: [FILE], toFetch: 1, bytes: 10_000_000 });
    p.onEvent({ kind: 'start', file: FILE.file, size: FILE.size, from: 0 });
    p.onEvent({ kind: 'progress', file: FILE.file, done: 5, size: FILE.size });
    assert.deepEqual(writes, []);
    p.onEvent({ kind: 'retry', file: FILE.file, why: 'the connection was reset', attempt: 1 });
    assert.deepEqual(writes, ['model.safetensors: the connection was reset; resuming (attempt 2)\n']);
  });
});
