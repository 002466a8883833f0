/**
 * The resident server's socket under attack by a client of the same user: random bytes, lines that
 * are not JSON, JSON of the wrong shape, random JSON, a line over the limit, a hundred connections
 * at once, clients that hang up mid-generation or mid-line. After all of it the same server process
 * is alive, answers a good request with the reference text, and its log holds no "internal error".
 * Bounded: a fixed seed, a few hundred lines, seconds; a private runtime folder, removed at the end.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, modelFixture, scratchDir } from '../../support/paths.js';
import { alive, cli, converse, kill, modelStem } from './harness.js';

const model = modelFixture('llama');
const runtime = scratchDir('hostile');
const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: runtime };
const dir = path.join(runtime, 'unicorn');
const sock = path.join(dir, `${modelStem(model)}.sock`);
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as { text: { prompt: string; greedy_text: string } };
const sampling = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 1 };
let pid: number;

before(async () => {
  const keep = await cli(['load', model, '--keep', '--json'], { env });
  assert.equal(keep.code, 0, keep.err);
  pid = (JSON.parse(keep.out) as { pid: number }).pid;
});

after(async () => {
  await cli(['stop'], { env });
  kill(pid);
  fs.rmSync(runtime, { recursive: true, force: true });
});

/** mulberry32: the same "random" input on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const isError = (v: unknown) => (v as { op?: string }).op === 'error';
const finals = (got: unknown[]) => got.filter((v) => (v as { op?: string }).op !== 'text');

/** Sends lines on one connection and waits for one final answer per line. */
async function answers(lines: readonly (string | Buffer)[]): Promise<unknown[]> {
  const data = Buffer.concat(lines.map((l) => Buffer.concat([Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')])));
  const { got } = await converse(sock, data, { until: (g) => finals(g).length >= lines.length, timeoutMs: 20_000 });
  return finals(got);
}

/** The server is the same process and answers `info`. */
async function stillServing(): Promise<void> {
  assert.ok(alive(pid), 'the server process is alive');
  const [info] = await answers(['{"op":"info"}']);
  assert.equal((info as { info: { pid: number } }).info.pid, pid);
}

test('random bytes: every line is answered with an error, the connection and the server go on', async () => {
  const rand = rng(15);
  for (let conn = 0; conn < 10; conn++) {
    const lines: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const b = Buffer.alloc(1 + Math.floor(rand() * 300), 0);
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
      for (let j = 0; j < b.length; j++) if (b[j] === 10) b[j] = 0x7b;
      b[0] = 0x7e; // never blank (a blank line is skipped, not answered)
      lines.push(b);
    }
    const got = await answers([...lines, '{"op":"info"}']);
    assert.equal(got.length, 21, `connection ${conn}: every line answered`);
    assert.ok(got.slice(0, 20).every(isError), 'the garbage got errors');
    assert.equal((got[20] as { op: string }).op, 'info', 'and a good request on the same connection after it is served');
  }
  await stillServing();
});

test('lines that are not JSON, and JSON of the wrong shape, get an error that says so', async () => {
  const bad = [
    '{',
    '[1,',
    'nul',
    '"abc',
    '{"op":',
    '\u0000\u001b[2J',
    'undefined',
    '{op:"info"}',
    '\ud800',
    'null',
    '1',
    '"info"',
    '[]',
    '{}',
    '{"op":5}',
    '{"op":null}',
    '{"op":"nope"}',
    '{"op":"__proto__"}',
    '{"op":"toString"}',
    '{"op":"complete"}',
    '{"op":"complete","req":null}',
    '{"op":"complete","req":[]}',
    '{"op":"complete","req":{"prompt":5}}',
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: 'yes', sampling, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling: { ...sampling, temperature: '0' }, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling: { ...sampling, topP: 7 }, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling, maxTokens: -1, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling, maxTokens: 1.5, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling, maxTokens: 4, stop: [1] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling, maxTokens: 4, stop: 'x' } }),
    JSON.stringify({ op: 'complete', req: { prompt: [1, 'a'], chat: false, sampling, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: [1e12], chat: false, sampling, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: true, messages: [{ role: 1 }], sampling, maxTokens: 4, stop: [] } }),
    JSON.stringify({ op: 'chat' }),
    JSON.stringify({ op: 'chat', messages: 'hi', sampling, maxTokens: 4 }),
    JSON.stringify({ op: 'chat', messages: [null], sampling, maxTokens: 4 }),
    JSON.stringify({ op: 'chat', messages: [], sampling: null, maxTokens: 4 }),
  ];
  // Answers come in order, except where a request reached the generation queue (a token id out of range).
  const got = await answers([...bad, '{"op":"info"}']);
  assert.equal(got.length, bad.length + 1);
  const errors = got.filter(isError) as { message: string }[];
  assert.equal(errors.length, bad.length, 'every bad line got an error');
  for (const e of errors) assert.match(e.message, /^bad request: |not in the vocabulary/);
  assert.equal(got.filter((v) => (v as { op: string }).op === 'info').length, 1, 'and the good one its answer');
  await stillServing();
});

test('random JSON requests (a fixed seed): each is answered, none ends the server', async () => {
  const rand = rng(6);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const value = (depth: number): unknown => {
    const k = Math.floor(rand() * (depth > 2 ? 5 : 8));
    if (k === 0) return null;
    if (k === 1) return rand() < 0.5;
    if (k === 2) return pick([0, 1, -1, 4, 2.5, 1e300, -0, 4294967296]);
    if (k === 3) return pick(['', 'x', 'user', 'op', '\u0000', '\u202e', 'a'.repeat(300)]);
    if (k === 4) return [];
    if (k === 5) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
    return Object.fromEntries(
      Array.from({ length: Math.floor(rand() * 5) }, () => [
        pick(['prompt', 'chat', 'sampling', 'maxTokens', 'stop', 'messages', 'role', 'content', 'temperature', 'x', '__proto__']),
        value(depth + 1),
      ]),
    );
  };
  const lines: string[] = [];
  for (let i = 0; i < 200; i++) {
    // Everything but `stop` (it would end the server, as it should) and `abort` (it has no answer).
    const op = pick(['info', 'reset', 'complete', 'chat', 'complete', 'chat', 'bogus', 5, null]);
    const fields = value(0);
    const request = {
      ...(fields !== null && typeof fields === 'object' && !Array.isArray(fields) ? fields : { junk: fields }),
      op,
      ...(rand() < 0.5 ? { req: value(1) } : {}),
    };
    // Now and then not an object at all (null, a number, a list...).
    lines.push(JSON.stringify(rand() < 0.15 ? (value(3) ?? null) : request));
  }
  for (let i = 0; i < lines.length; i += 50) {
    const got = await answers(lines.slice(i, i + 50));
    assert.equal(got.length, 50, `lines ${i}..${i + 49}: each answered`);
  }
  await stillServing();
});

test('a line over the limit (16 MB without a newline) is refused at the limit and its connection closed; others are served meanwhile', async () => {
  const t0 = Date.now();
  const huge = converse(sock, Buffer.alloc(16 * 1024 * 1024, 0x61), { timeoutMs: 20_000 });
  await stillServing();
  const { got, closed } = await huge;
  assert.ok(closed, 'the connection was closed');
  assert.equal(got.length, 1);
  assert.match((got[0] as { message: string }).message, /line longer than \d+ bytes/);
  assert.ok(Date.now() - t0 < 15_000, `refused in ${Date.now() - t0} ms`);
  await stillServing();
});

test('a hundred connections at once are all answered', async () => {
  const all = await Promise.all(Array.from({ length: 100 }, () => converse(sock, '{"op":"info"}\n', { until: (g) => g.length >= 1, timeoutMs: 20_000 })));
  assert.ok(
    all.every((r) => (r.got[0] as { op?: string } | undefined)?.op === 'info'),
    'each got its info',
  );
  await stillServing();
});

test('clients that hang up mid-generation, mid-line or right after asking do not stop the server', async () => {
  const req = (maxTokens: number) => `${JSON.stringify({ op: 'complete', req: { prompt: 'In the beginning', chat: false, sampling, maxTokens, stop: [] } })}\n`;
  // After the first words of a long reply.
  for (let i = 0; i < 3; i++) await converse(sock, req(400), { until: (g) => g.length >= 1, timeoutMs: 20_000 });
  // Before any answer, half a line, and a client that asks and closes its side without reading.
  await Promise.all([
    new Promise<void>((resolve) => {
      const c = net.connect(sock, () => {
        c.write(req(400));
        c.destroy();
        resolve();
      });
    }),
    new Promise<void>((resolve) => {
      const c = net.connect(sock, () => {
        c.write('{"op":"complete","req":{"prompt":"x');
        c.destroy();
        resolve();
      });
    }),
    converse(sock, req(8), { end: true, timeoutMs: 20_000 }),
  ]);
  await stillServing();
  // A good request through the CLI gets the reference text from the same server.
  const run = await cli(['run', model, ref.text.prompt, '-n', '16', '--temp', '0', '--json'], { env });
  assert.equal(run.code, 0, run.err);
  assert.match(run.err, new RegExp(`using the resident .* \\(pid ${pid}`));
  assert.equal((JSON.parse(run.out) as { text: string }).text, ref.text.greedy_text);
  const log = fs.readFileSync(path.join(dir, `${modelStem(model)}.log`), 'utf8');
  assert.doesNotMatch(log, /internal error|TypeError|SyntaxError|\n\s+at /, "the server's log holds no crash");
});
