/**
 * The attack on `unicorn serve`, made repeatable: a real server process (the llama fixture, an API
 * key, a 50 KB body limit) gets hostile input at every HTTP boundary, over loopback, seeded and
 * bounded (a few hundred requests, seconds):
 *   - request targets: //[, absolute-form with bad ports or foreign hosts, broken %-escapes, paths
 *     too long, every method on every route, CONNECT, Upgrade, HTTP/0.9, 1.0 and 2 prefaces;
 *   - headers: Host missing, repeated, huge, foreign, malformed; Origin; Content-Type variants;
 *     Authorization variants; conflicting lengths, bad chunking, NUL, folded lines, too many;
 *   - bodies: random JSON, valid requests with random fields, deep nesting, huge numbers, lone
 *     surrogates, invalid UTF-8, over the limit with and without Content-Length, lengths that lie;
 *   - slow and vanishing clients: hanging up at every part of a request, in the middle of an SSE
 *     answer, dripping headers, idle connections, pipelining.
 * Every response must be a success or a well-formed OpenAI error object (4xx, or 503 for a full
 * queue), none may say "internal error", the process must stay up and keep answering /health
 * promptly, and its log must hold no "internal error" or stack trace.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { Rng } from '../../../src/engine/generate/sampler.js';
import { BIN, modelFixture, scratchDir } from '../../support/paths.js';
import { type RawResponse, errorObject, exchange, request } from './raw-http.js';

const model = modelFixture('llama');
const runtime = scratchDir('hostile-runtime');
const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: runtime };
const KEY = 'sk-hostile';
const auth = { Authorization: `Bearer ${KEY}` };
const json = { 'Content-Type': 'application/json', ...auth };

let proc: ChildProcess;
let port = 0;
let log = '';

before(async () => {
  proc = spawn(process.execPath, [BIN, 'serve', model, '--port', '0', '--api-key', KEY, '--max-body', '0.05', '--max-queue', '4'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr!.on('data', (c: Buffer) => {
    log += c.toString();
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /at http:\/\/127\.0\.0\.1:(\d+)\/v1/.exec(out);
      if (m !== null) {
        port = Number(m[1]);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
  });
});

after(async () => {
  if (proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(runtime, { recursive: true, force: true });
});

/** A success, or a well-formed error object that is the client's (4xx) or a full queue (503); never "internal error". */
function judge(r: RawResponse, what: string, o: { noAnswer?: boolean; head?: boolean } = {}): void {
  if (r.status === 0) {
    assert.ok(o.noAnswer === true, `${what}: no response (${r.error ?? 'closed'})`);
    return;
  }
  assert.ok(!/internal error/i.test(r.body), `${what}: ${r.body.slice(0, 300)}`);
  if (r.status >= 400) {
    assert.ok(r.status < 500 || r.status === 503, `${what}: ${r.status} ${r.body.slice(0, 300)}`);
    if (o.head !== true) errorObject(r, what);
  }
}

/** The process is up and /health answers within a second. */
async function alive(what: string): Promise<void> {
  assert.equal(proc.exitCode, null, `${what}: the server exited: ${log.slice(-2000)}`);
  const t0 = performance.now();
  const h = await exchange(port, request('GET', '/health'), { timeoutMs: 5000 });
  assert.equal(h.status, 200, `${what}: /health ${h.status} ${h.body}`);
  assert.ok(performance.now() - t0 < 1000, `${what}: /health took ${(performance.now() - t0).toFixed(0)} ms`);
}

const chatBody = (extra: object = {}) => JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...extra });

test('request targets and methods: 400 for what is not a target, 404/405 for what is not a route, never a crash', async () => {
  const targets = [
    '//[',
    '//[::1',
    '//',
    '///v1/models',
    '/%',
    '/%%',
    '/%E0%A4%A',
    '/v1/models/%E0%A4',
    '/v1/models/%FF%FE',
    '/v1/models/%00',
    '/v1/models/..%2F..%2Fetc',
    '/v1/models/%C0%AF',
    '/v1/../v1/models',
    '/./v1/models',
    '/v1/models?%',
    '/v1/models?a=[',
    '/v1/models#frag',
    '/v1//models',
    '/V1/MODELS',
    '/v1/models/',
    'http://a:99999/',
    'http://[::1/',
    'http://user:pass@127.0.0.1/v1/models',
    'http://127.0.0.1:8080/v1/models',
    'http://evil.example/v1/models',
    'https://127.0.0.1/health',
    'ftp://127.0.0.1/',
    'file:///etc/passwd',
    'javascript:alert(1)',
    'http:/x',
    'http://',
    'v1/models',
    '*',
    '\\v1\\models',
    `/v1/models/${'a'.repeat(4000)}`,
    `/${'%41'.repeat(2000)}`,
    `/${'a'.repeat(20_000)}`,
    '/v1/models/<script>',
    '/v1/models/"\'',
    '/v1/{x}',
    '/v1/`x`',
    '/health?x=%ZZ',
  ];
  for (const target of targets) {
    for (const method of ['GET', 'POST', 'OPTIONS', 'DELETE', 'PATCH']) {
      const body = method === 'POST' ? chatBody() : undefined;
      const r = await exchange(port, request(method, target, method === 'POST' ? json : auth, body));
      judge(r, `${method} ${target.slice(0, 60)}`);
      assert.notEqual(r.status, 0);
    }
  }
  for (const line of [
    'CONNECT 127.0.0.1:443 HTTP/1.1',
    'TRACE / HTTP/1.1',
    'M-SEARCH * HTTP/1.1',
    'BREW /v1/models HTCPCP/1.0',
    'GET /health HTTP/9.9',
    'GET /health',
    'PRI * HTTP/2.0',
  ]) {
    judge(await exchange(port, Buffer.from(`${line}\r\nHost: 127.0.0.1\r\n\r\n${line.startsWith('PRI') ? 'SM\r\n\r\n' : ''}`)), line);
  }
  judge(await exchange(port, request('HEAD', '/health'), { head: true }), 'HEAD /health', { head: true });
  judge(await exchange(port, request('GET', '/v1/models', { ...auth, Connection: 'Upgrade', Upgrade: 'websocket' })), 'Upgrade');
  await alive('after the targets');
});

test('headers: Host, Origin, Content-Type, Authorization, lengths and framing', async () => {
  const good = chatBody();
  const cases: [string, Buffer, number | null][] = [];
  const add = (what: string, req: Buffer, want: number | null = null) => cases.push([what, req, want]);
  for (const host of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', 'EVIL.example:80', `${'a'.repeat(10_000)}.example`, 'x'.repeat(300)])
    add(`Host ${host.slice(0, 30)}`, request('GET', '/v1/models', { ...auth, Host: host }), 403);
  for (const host of ['', ' ', 'a:b:c', 'x:99999', 'x:-1', '[::1', '[zz]:80', 'a b', 'a/b', 'a@b', ':80', '\u00e9.localhost'])
    add(`Host '${host}'`, request('GET', '/v1/models', { ...auth, Host: host }), 400);
  for (const host of ['localhost', 'LOCALHOST:1', 'a.b.localhost', '127.0.0.1', '127.9.9.9:8080', '[::1]', '[::1]:80', '192.168.0.1'])
    add(`Host ${host}`, request('GET', '/v1/models', { ...auth, Host: host }), 200);
  add('two Hosts', Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nAuthorization: Bearer ${KEY}\r\n\r\n`), 400);
  add('no Host', Buffer.from(`GET /v1/models HTTP/1.1\r\nAuthorization: Bearer ${KEY}\r\n\r\n`), 400);
  for (const origin of ['http://evil.example', 'null', 'http://localhost:3000', 'https://127.0.0.1', 'file://', '', 'x'.repeat(5000)]) {
    add(`Origin ${origin.slice(0, 30)}`, request('POST', '/v1/chat/completions', { ...json, Origin: origin }, good), origin === '' ? null : 403);
    add(`preflight from ${origin.slice(0, 30)}`, request('OPTIONS', '/v1/chat/completions', { Origin: origin, 'Access-Control-Request-Method': 'POST' }), null);
  }
  for (const type of [
    'text/plain',
    'text/plain;charset=UTF-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonx',
    'application/json-seq',
    'json',
    '*/*',
    ';',
    `application/json${';a=b'.repeat(500)}`,
  ]) {
    add(
      `Content-Type ${type.slice(0, 30)}`,
      request('POST', '/v1/chat/completions', { ...auth, 'Content-Type': type }, good),
      type.startsWith('application/json;') ? 200 : 415,
    );
  }
  add('no Content-Type', request('POST', '/v1/chat/completions', auth, good), 415);
  for (const a of ['bearer sk-hostile', 'BEARER sk-hostile', 'Bearer \t sk-hostile'])
    add(`Authorization ${a}`, request('GET', '/v1/models', { Authorization: a }), 200);
  for (const a of [
    '',
    'Bearer',
    'Bearer ',
    'sk-hostile',
    'Basic c2s6aG9zdGlsZQ==',
    'Bearer sk-hostil',
    'Bearer sk-hostile2',
    'Bearer sk-hostile x',
    `Bearer ${'k'.repeat(12_000)}`,
    'Bearer \u00e9',
  ]) {
    add(`Authorization ${a.slice(0, 30)}`, request('GET', '/v1/models', { Authorization: a }), 401);
  }
  add('two keys', Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nAuthorization: Bearer x\r\n\r\n`), null);
  add('Content-Length and chunked', request('POST', '/v1/completions', { ...json, 'Content-Length': '2', 'Transfer-Encoding': 'chunked' }, '0\r\n\r\n'), 400);
  add('two lengths', request('POST', '/v1/completions', { ...json, 'Content-Length': '2, 3' }, '{}x'), 400);
  add('negative length', request('POST', '/v1/completions', { ...json, 'Content-Length': '-5' }, ''), 400);
  add('length 2^64', request('POST', '/v1/completions', { ...json, 'Content-Length': '18446744073709551616' }, ''), 400);
  add('gzip coding', request('POST', '/v1/completions', { ...json, 'Transfer-Encoding': 'gzip' }, '{}'), 400);
  add('bad chunk size', request('POST', '/v1/completions', { ...json, 'Transfer-Encoding': 'chunked' }, 'zz\r\n{}\r\n0\r\n\r\n'), 400);
  add(
    'huge chunk extension',
    request('POST', '/v1/completions', { ...json, 'Transfer-Encoding': 'chunked' }, `2;${'x'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`),
    null,
  );
  add('NUL in a header', request('GET', '/v1/models', { ...auth, 'X-A': 'a\u0000b' }), 400);
  add('folded header', Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n`), 400);
  add('bare LF', Buffer.from('GET /health HTTP/1.1\nHost: 127.0.0.1\n\n'), null);
  add('3000 headers', Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y\r\n`).join('')}\r\n`), 431);
  add('a 20 KB header', request('GET', '/health', { 'X-Big': 'y'.repeat(20_000) }), 431);
  add('Expect: something else', request('POST', '/v1/chat/completions', { ...json, Expect: 'the-unexpected' }, good), 417);
  add('HTTP/1.0 without Host', Buffer.from(`GET /v1/models HTTP/1.0\r\nAuthorization: Bearer ${KEY}\r\n\r\n`), 200);
  for (const [what, req, want] of cases) {
    const r = await exchange(port, req);
    judge(r, what);
    if (want !== null) assert.equal(r.status, want, `${what}: ${r.body.slice(0, 200)}`);
  }
  await alive('after the headers');
});

const FIELDS = [
  'model',
  'messages',
  'prompt',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'seed',
  'stream',
  'n',
  'echo',
  'suffix',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'stream_options',
  'logprobs',
  'top_logprobs',
  'tools',
  'tool_choice',
  'response_format',
  'logit_bias',
  'best_of',
  'user',
  '__proto__',
  'constructor',
];
const ATOMS: unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  1,
  -1,
  2,
  0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 63),
  123456789012345680000,
  '',
  'x',
  ' ',
  '0',
  '1e999',
  'NaN',
  'null',
  '\u0000',
  '\ud800',
  '\udfff x',
  '\u001b[2J',
  '\r\nX-Forged: 1',
  '<|im_start|>system',
  '<bos>',
  'é'.repeat(100),
  '😀'.repeat(50),
  'llama',
  'gpt-4o',
  '../../etc/passwd',
];

function randomJson(rng: Rng, depth: number): unknown {
  const r = rng.next();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  if (depth <= 0 || r < 0.45) return pick(ATOMS);
  if (r < 0.7) return Array.from({ length: Math.floor(rng.next() * 5) }, () => randomJson(rng, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rng.next() * 5); i > 0; i--)
    o[
      rng.next() < 0.6
        ? pick(['role', 'content', 'type', 'text', 'include_usage', 'image_url', 'url', ...FIELDS])
        : pick(ATOMS.filter((a): a is string => typeof a === 'string'))
    ] = randomJson(rng, depth - 1);
  return o;
}

test('bodies: random JSON, valid requests with random fields, deep nesting, bad encodings, sizes that lie', async () => {
  const rng = new Rng(15_2026);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    exchange(port, request('POST', path, { ...json, ...headers }, body));
  let served = 0;
  for (let i = 0; i < 200; i++) {
    const path = pick(['/v1/chat/completions', '/v1/completions']);
    let body: string;
    if (i % 4 === 0) {
      body = JSON.stringify(randomJson(rng, 6));
    } else {
      // A valid request with one to three fields replaced (the two token limits never both, so answers stay short).
      const base: Record<string, unknown> =
        path === '/v1/completions'
          ? { model: 'llama', prompt: 'hi', max_tokens: 2, max_completion_tokens: 2 }
          : { model: 'llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, max_completion_tokens: 2 };
      let fields = Array.from({ length: 1 + Math.floor(rng.next() * 3) }, () => pick(FIELDS));
      if (fields.includes('max_tokens')) fields = fields.filter((f) => f !== 'max_completion_tokens');
      for (const f of fields) Object.defineProperty(base, f, { value: randomJson(rng, 3), enumerable: true, configurable: true, writable: true });
      body = JSON.stringify(base);
    }
    const r = await post(path, body);
    judge(r, `body ${i}: ${body.slice(0, 200)}`);
    if (r.status === 200) served++;
  }
  assert.ok(served > 5 && served < 150, `${served} of 200 random bodies were served`);
  const special: [string, string | Buffer, Record<string, string>?][] = [
    ['deep arrays', `{"messages":${'['.repeat(20_000)}${']'.repeat(20_000)}}`],
    ['deep objects', `${'{"a":'.repeat(8000)}1${'}'.repeat(8000)}`],
    ['deep content parts', JSON.stringify({ messages: [{ role: 'user', content: JSON.parse(`${'['.repeat(2000)}${']'.repeat(2000)}`) }], max_tokens: 2 })],
    ['1e999', '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e999}'],
    ['a 300-digit number', `{"messages":[{"role":"user","content":"hi"}],"seed":${'9'.repeat(300)}}`],
    ['lone surrogates', JSON.stringify({ messages: [{ role: 'user', content: '\ud800\udc00\ud800 \udfff' }], max_tokens: 2 })],
    [
      'invalid UTF-8',
      Buffer.concat([
        Buffer.from('{"messages":[{"role":"user","content":"'),
        Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]),
        Buffer.from('"}],"max_tokens":2}'),
      ]),
    ],
    ['a BOM', `\ufeff${chatBody()}`],
    ['NUL bytes', `${chatBody()}\u0000`],
    ['UTF-16', Buffer.from(chatBody(), 'utf16le'), { 'Content-Type': 'application/json; charset=utf-16' }],
    ['duplicate keys', '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"max_tokens":"x"}'],
    ['__proto__', '{"__proto__":{"max_tokens":99999},"messages":[{"role":"user","content":"hi"}],"max_tokens":2}'],
    [
      '500 content parts',
      JSON.stringify({ messages: [{ role: 'user', content: Array.from({ length: 500 }, () => ({ type: 'text', text: 'a' })) }], max_tokens: 2 }),
    ],
    ['16 long stops', chatBody({ stop: Array.from({ length: 16 }, (_, i) => `${i}`.repeat(2000)) })],
    [
      '1000 messages',
      JSON.stringify({ messages: Array.from({ length: 1000 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: 'a' })), max_tokens: 2 }),
    ],
    ['token ids past the vocabulary', JSON.stringify({ prompt: [1, 2, 2 ** 31, -7], max_tokens: 2 })],
    ['a prompt past the context', JSON.stringify({ prompt: 'the sea '.repeat(5000), max_tokens: 2 })],
    ['JSON that is a string', '"hello"'],
    ['an empty body', ''],
    ['whitespace', ' \n\t '],
    ['truncated', chatBody().slice(0, 25)],
  ];
  for (const [what, body, headers] of special) {
    const r = await post(
      what === 'a prompt past the context' || what === 'token ids past the vocabulary' ? '/v1/completions' : '/v1/chat/completions',
      body,
      headers,
    );
    judge(r, what);
  }
  // Over the limit: with Content-Length, chunked, and lengths that lie.
  const big = chatBody({ messages: [{ role: 'user', content: 'a'.repeat(80_000) }] });
  for (let i = 0; i < 3; i++) {
    const declared = await post('/v1/chat/completions', big);
    assert.equal(declared.status, 413);
    assert.equal(declared.error, null, 'not reset while sending');
    const chunked = await exchange(
      port,
      request('POST', '/v1/chat/completions', { ...json, 'Transfer-Encoding': 'chunked' }, `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`),
    );
    assert.equal(chunked.status, 413);
    judge(chunked, 'chunked over the limit');
  }
  const shorter = await exchange(port, request('POST', '/v1/chat/completions', { ...json, 'Content-Length': '2' }, `{}${chatBody()}`));
  judge(shorter, 'a length shorter than the body');
  const expect = await exchange(port, request('POST', '/v1/chat/completions', { ...json, 'Content-Length': String(big.length), Expect: '100-continue' }));
  assert.equal(expect.status, 413);
  await alive('after the bodies');
});

test('slow and vanishing clients: hang-ups anywhere, mid-stream, dripping headers, idle connections, pipelining', async () => {
  const rng = new Rng(404);
  const full = request('POST', '/v1/chat/completions', json, chatBody({ max_tokens: 4 }));
  // Hang up after a random part of a request, 40 times.
  for (let i = 0; i < 40; i++) {
    const cut = Math.floor(rng.next() * full.length);
    await exchange(port, full.subarray(0, cut), { hangUpAfterMs: 5 });
  }
  await alive('after 40 hang-ups');

  // Hang up in the middle of an SSE answer: the generation stops, the queue empties.
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('data', (c: Buffer) => {
        if (c.toString().includes('data: ')) {
          s.destroy();
          resolve();
        }
      });
      s.write(request('POST', '/v1/chat/completions', json, chatBody({ max_tokens: 400, stream: true })));
    });
  }
  const end = Date.now() + 10_000;
  for (;;) {
    const h = JSON.parse((await exchange(port, request('GET', '/health'))).body) as { queue: { active: number; waiting: number } };
    if (h.queue.active === 0 && h.queue.waiting === 0) break;
    assert.ok(Date.now() < end, `the queue did not empty: ${JSON.stringify(h.queue)}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  // Twenty idle connections and one dripping its headers, while others are served promptly.
  const idle = Array.from({ length: 20 }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  const drip = net.connect(port, '127.0.0.1').on('error', () => {});
  drip.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const dripping = setInterval(() => drip.write('X-Slow: y\r\n'), 50);
  try {
    for (let i = 0; i < 5; i++) {
      await alive(`while 21 connections hang (${i})`);
      const r = await exchange(port, request('POST', '/v1/chat/completions', json, chatBody()), { timeoutMs: 10_000 });
      assert.equal(r.status, 200);
    }
  } finally {
    clearInterval(dripping);
    for (const s of idle) s.destroy();
  }
  const dripped = await new Promise<string>((resolve) => {
    let got = '';
    drip.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.includes('"status":"ok"')) {
        drip.destroy();
        resolve(got);
      }
    });
    drip.write('\r\n');
  });
  assert.match(dripped, /^HTTP\/1\.1 200/);

  // Two requests in one write: both answered, in order.
  const both = await new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
    });
    s.on('close', () => resolve(got));
    s.write(Buffer.concat([request('GET', '/v1/models', auth), request('GET', '/health', { Connection: 'close' })]));
  });
  assert.deepEqual(
    [...both.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]),
    ['200', '200'],
  );
  await alive('after the slow clients');
});

test('afterwards: the same process, still correct, and its log holds no internal error or stack trace', async () => {
  await alive('at the end');
  const r = await exchange(
    port,
    request('POST', '/v1/completions', json, JSON.stringify({ model: 'llama', prompt: 'The sea', max_tokens: 3, temperature: 0 })),
  );
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);
  assert.ok(
    !/internal error|TypeError|RangeError|Uncaught|\n\s+at /.test(log),
    log
      .split('\n')
      .filter((l) => /internal error|Error|\s+at /.test(l))
      .slice(0, 10)
      .join('\n'),
  );
  // Every request's log line is one line of printable text (the lines before them are the loader's own, in colour).
  const requests = log.split('\n').filter((l) => /^\d\d:\d\d:\d\d [A-Z]/.test(l));
  assert.ok(requests.length > 500, `${requests.length} request lines`);
  for (const line of requests) assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(line), JSON.stringify(line.slice(0, 200)));
});
