/** The resident server's wire format: bounded JSON lines, and requests checked field by field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadRequestError, type LineProblem, lines, parseRequest } from '../../../src/engine/server/protocol.js';

function collect(maxBytes?: number): { feed: (c: Buffer | string) => void; got: unknown[]; bad: LineProblem[] } {
  const got: unknown[] = [];
  const bad: LineProblem[] = [];
  const f = lines(
    (v) => got.push(v),
    (p) => bad.push(p),
    maxBytes,
  );
  return { feed: (c) => f(Buffer.isBuffer(c) ? c : Buffer.from(c)), got, bad };
}

test('lines: split across chunks, a UTF-8 character cut between two chunks stays whole, blank lines skipped', () => {
  const c = collect();
  const bytes = Buffer.from('{"a":"héllo ✓"}\n\n  \n{"b":[1,2]}\n{"c"');
  const cut = bytes.indexOf(Buffer.from('✓')) + 1; // inside the 3-byte character
  c.feed(bytes.subarray(0, cut));
  c.feed(bytes.subarray(cut));
  c.feed(':3}\n');
  assert.deepEqual(c.got, [{ a: 'héllo ✓' }, { b: [1, 2] }, { c: 3 }]);
  assert.deepEqual(c.bad, []);
});

test('lines: a line that is not JSON is reported and the lines after it still come', () => {
  const c = collect();
  c.feed('{"ok":1}\nnot json\n\u001b[2J{\n{"ok":2}\n');
  assert.deepEqual(c.got, [{ ok: 1 }, { ok: 2 }]);
  assert.equal(c.bad.length, 2);
  assert.ok(c.bad.every((p) => p.kind === 'json' && /not a JSON line/.test(p.message)));
});

test('lines: a line over the limit is reported once, as soon as the limit is passed, and nothing after it is read', () => {
  const c = collect(1000);
  c.feed('{"ok":1}\n');
  c.feed('x'.repeat(600));
  assert.equal(c.bad.length, 0);
  c.feed('x'.repeat(600)); // 1200 bytes, no newline yet
  assert.deepEqual(
    c.bad.map((p) => p.kind),
    ['too-long'],
  );
  c.feed('\n{"ok":2}\n');
  assert.deepEqual(c.got, [{ ok: 1 }], 'the stream ends at the long line');
  assert.equal(c.bad.length, 1);
  // A whole line over the limit inside one chunk, too.
  const d = collect(10);
  d.feed(`${'y'.repeat(20)}\n{"ok":3}\n`);
  assert.deepEqual(
    d.bad.map((p) => p.kind),
    ['too-long'],
  );
  assert.deepEqual(d.got, []);
});

test('lines: 64 MB without a newline is refused at the default limit, in linear time', () => {
  const c = collect();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const t0 = performance.now();
  for (let i = 0; i < 1024 && c.bad.length === 0; i++) c.feed(chunk);
  assert.deepEqual(
    c.bad.map((p) => p.kind),
    ['too-long'],
  );
  assert.ok(performance.now() - t0 < 2000, `${(performance.now() - t0).toFixed(0)} ms`);
});

const sampling = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 1 };

test('parseRequest takes the requests run, chat, serve, ps and stop send', () => {
  for (const op of ['info', 'abort', 'reset', 'stop'] as const) assert.deepEqual(parseRequest({ op }), { op });
  const req = { prompt: 'hi', chat: true, system: 's', templateVars: { x: 1 }, sampling: { ...sampling, presencePenalty: 0.5 }, maxTokens: 16, stop: ['\n'] };
  assert.deepEqual(parseRequest({ op: 'complete', req }), { op: 'complete', req });
  assert.deepEqual(parseRequest({ op: 'complete', req: { ...req, prompt: [1, 2, 3], chat: false } }).op, 'complete');
  const chat = { op: 'chat', messages: [{ role: 'user', content: 'hi' }], sampling, maxTokens: 0 };
  assert.deepEqual(parseRequest(chat), chat);
});

test('parseRequest refuses every wrong shape with a BadRequestError naming the field', () => {
  const complete = (req: Record<string, unknown>) => ({ op: 'complete', req: { prompt: 'x', chat: false, sampling, maxTokens: 4, stop: [], ...req } });
  const cases: [unknown, RegExp][] = [
    [null, /JSON object with an "op"/],
    [[], /JSON object/],
    ['info', /JSON object/],
    [7, /JSON object/],
    [{}, /unknown "op" of type undefined/],
    [{ op: 5 }, /of type number/],
    [{ op: 'nope' }, /unknown "op" "nope"/],
    [{ op: 'constructor' }, /unknown "op"/],
    [{ op: 'complete' }, /"req" must be an object/],
    [{ op: 'complete', req: [] }, /"req" must be an object/],
    [complete({ prompt: 5 }), /"req.prompt"/],
    [complete({ prompt: ['a'] }), /"req.prompt"/],
    [complete({ chat: 1 }), /"req.chat"/],
    [complete({ messages: [{ role: 'user' }] }), /"req.messages"/],
    [complete({ system: 3 }), /"req.system"/],
    [complete({ templateVars: [] }), /"req.templateVars"/],
    [complete({ sampling: null }), /"sampling" must be an object/],
    [complete({ sampling: { ...sampling, topK: '40' } }), /"sampling.topK" must be a number/],
    [complete({ sampling: { ...sampling, topP: 2 } }), /top-p 2 must be in/],
    [complete({ sampling: { ...sampling, presencePenalty: 'a' } }), /presencePenalty/],
    [complete({ maxTokens: -1 }), /"maxTokens"/],
    [complete({ maxTokens: 2.5 }), /"maxTokens"/],
    [complete({ maxTokens: '4' }), /"maxTokens"/],
    [complete({ stop: 'x' }), /"req.stop"/],
    [complete({ stop: [null] }), /"req.stop"/],
    [{ op: 'chat', messages: 'hi', sampling, maxTokens: 4 }, /"messages"/],
    [{ op: 'chat', messages: [null], sampling, maxTokens: 4 }, /"messages"/],
    [{ op: 'chat', messages: [], sampling, maxTokens: null }, /"maxTokens"/],
    [{ op: 'chat', messages: [], maxTokens: 4 }, /"sampling"/],
  ];
  for (const [v, why] of cases) {
    assert.throws(
      () => parseRequest(v),
      (e: unknown) => e instanceof BadRequestError && /^bad request: /.test(e.message) && why.test(e.message),
      JSON.stringify(v),
    );
  }
});
