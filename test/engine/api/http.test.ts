/**
 * The HTTP layer over a scripted backend (no model): CORS, the queue's limit and order, a failure in
 * the middle of a stream, body limits and methods, and what a hostile client can send (request
 * targets, Host, Origin, Content-Type, Authorization, lengths that lie, hanging up). The real model
 * behind it is tested in test/commands/serve.test.ts, the whole attack surface in hostile.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ApiBackend, type ApiOptions, isLoopbackHost, startApi } from '../../../src/engine/api/http.js';
import type { CompletionRequest, CompletionResult } from '../../../src/engine/generate/complete.js';
import { errorObject, exchange, request } from './raw-http.js';

/** A backend that says `reply` word by word, after `gate` opens. */
function scripted(reply: string, opts: { failAfter?: number; gate?: Promise<void> } = {}): ApiBackend & { seen: CompletionRequest[] } {
  const seen: CompletionRequest[] = [];
  return {
    seen,
    modelId: 'fake',
    ctx: 100,
    defaults: { temperature: 0 },
    chat: true,
    async complete(req, onText, shouldStop): Promise<CompletionResult> {
      seen.push(req);
      await opts.gate;
      const words = reply.split(/(?= )/);
      let n = 0;
      for (const w of words) {
        if (shouldStop()) break;
        if (opts.failAfter !== undefined && n === opts.failAfter) throw new Error('VK_ERROR_DEVICE_LOST');
        onText(w);
        n++;
        await new Promise((r) => setImmediate(r));
      }
      return {
        text: words.slice(0, n).join(''),
        tokens: Array.from({ length: n }, (_, i) => i),
        finish: 'eos',
        promptTokens: 3,
        contextLimit: 100,
        device: 'fake',
        timeToFirstTokenMs: 1,
        prefillTokensPerSecond: null,
        decodeTokensPerSecond: null,
      };
    },
    status: () => Promise.resolve({ device: 'fake', contextUsed: 0, gpuBytes: null, resident: false }),
  };
}

const base = { host: '127.0.0.1', port: 0, maxBodyBytes: 1000, maxQueue: 2, version: 'test' };
const chat = (extra: object = {}) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...extra }),
});

test('CORS only when asked: preflight and headers for the given origin', async () => {
  const api = await startApi(scripted('a b'), { ...base, cors: 'http://localhost:3000' });
  try {
    const pre = await fetch(`${api.url}/v1/chat/completions`, { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    const r = await fetch(`${api.url}/v1/chat/completions`, chat());
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://localhost:3000');
  } finally {
    await api.close();
  }
  const closed = await startApi(scripted('a b'), base);
  try {
    const pre = await fetch(`${closed.url}/v1/chat/completions`, { method: 'OPTIONS' });
    assert.equal(pre.status, 405);
    assert.equal(pre.headers.get('allow'), 'POST');
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
  } finally {
    await closed.close();
  }
});

test('the queue: one at a time in arrival order, a limit on waiting requests (503), /health counts them', async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => {
    open = r;
  });
  const backend = scripted('x y', { gate });
  const api = await startApi(backend, base);
  try {
    const first = fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await new Promise((r) => setTimeout(r, 50));
    const waiting = [fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 2 })), fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 3 }))];
    await new Promise((r) => setTimeout(r, 50));
    const health = (await (await fetch(`${api.url}/health`)).json()) as { queue: { active: number; waiting: number } };
    assert.deepEqual(health.queue, { active: 1, waiting: 2 });
    const over = await fetch(`${api.url}/v1/chat/completions`, chat());
    assert.equal(over.status, 503);
    assert.equal(((await over.json()) as { error: { code: string } }).error.code, 'server_busy');
    open();
    for (const r of [first, ...waiting]) assert.equal((await r).status, 200);
    assert.deepEqual(
      backend.seen.map((s) => s.maxTokens),
      [1, 2, 3],
      'served in arrival order',
    );
  } finally {
    await api.close();
  }
});

test('a failure mid-stream ends the stream with an error event; before the first byte it is a 500', async () => {
  const api = await startApi(scripted('one two three', { failAfter: 2 }), base);
  try {
    const s = await fetch(`${api.url}/v1/chat/completions`, chat({ stream: true }));
    assert.equal(s.status, 200);
    const text = await s.text();
    assert.match(text, /"content":" two"/);
    assert.match(text, /data: \{"error":\{"message":"internal error: VK_ERROR_DEVICE_LOST","type":"server_error"/);
    assert.ok(text.endsWith('data: [DONE]\n\n'));
  } finally {
    await api.close();
  }
  const early = await startApi(scripted('one', { failAfter: 0 }), base);
  try {
    const r = await fetch(`${early.url}/v1/chat/completions`, chat());
    assert.equal(r.status, 500);
    assert.equal(((await r.json()) as { error: { type: string } }).error.type, 'server_error');
  } finally {
    await early.close();
  }
});

test('bodies over the limit get 413 (declared or streamed); no body and wrong methods are refused', async () => {
  const api = await startApi(scripted('a'), base);
  try {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(2000) }] });
    const json = { 'Content-Type': 'application/json' };
    const declared = await fetch(`${api.url}/v1/chat/completions`, { method: 'POST', headers: json, body: big });
    assert.equal(declared.status, 413);
    const streamed = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: json,
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal((await fetch(`${api.url}/v1/chat/completions`, { method: 'POST', headers: json })).status, 400);
    const get = await fetch(`${api.url}/v1/completions`);
    assert.equal(get.status, 405);
    // Still serving.
    assert.equal((await fetch(`${api.url}/v1/chat/completions`, chat())).status, 200);
  } finally {
    await api.close();
  }
});

/** A server over `backend` for one test, closed after it. */
async function withApi(backend: ApiBackend, opts: Partial<ApiOptions>, body: (port: number, lines: string[]) => Promise<void>): Promise<void> {
  const lines: string[] = [];
  const api = await startApi(backend, { ...base, ...opts, log: (l) => lines.push(l) });
  try {
    await body(api.port, lines);
  } finally {
    await api.close();
  }
}

const health = (port: number) => exchange(port, request('GET', '/health'));

test('request targets that are not a path or an http URL are a 400 with an error object, never a crash (before the key check too)', async () => {
  await withApi(scripted('a'), { apiKey: 'k' }, async (port, lines) => {
    for (const target of [
      '//[',
      '//[::1',
      'http://a:99999/',
      'http://[::1/v1/models',
      'ftp://x/v1/models',
      'v1/models',
      '/v1/mo"dels',
      '/v1/models/%E0%A4%A',
      '/v1/models/%zz',
      '/%',
    ]) {
      const r = await exchange(port, request('GET', target, { Authorization: 'Bearer k' }));
      assert.equal(r.status, 400, `${target}: ${r.body}`);
      // Node's parser refuses some itself (malformed HTTP), the server the rest.
      assert.ok(['invalid_request_target', 'malformed_request'].includes(errorObject(r, target).code ?? ''), target);
    }
    // A well-formed escape that is not UTF-8 (the model id is decoded): 400, not "URI malformed".
    const notUtf8 = await exchange(port, request('GET', '/v1/models/%E0%A4', { Authorization: 'Bearer k' }));
    assert.equal(notUtf8.status, 400);
    errorObject(notUtf8);
    // Absolute-form with a good URL is served like its path.
    assert.equal((await exchange(port, request('GET', 'http://127.0.0.1/v1/models', { Authorization: 'Bearer k' }))).status, 200);
    assert.equal((await health(port)).status, 200);
    assert.ok(!lines.some((l) => /internal error/.test(l)), lines.join('\n'));
  });
});

test('the Host header must name this server (DNS rebinding): localhost, IP addresses, the hostname, --allowed-hosts', async () => {
  await withApi(scripted('a'), { allowedHosts: ['api.example.org'] }, async (port) => {
    for (const host of [
      'localhost',
      'localhost:8080',
      'app.localhost',
      '127.0.0.1:1',
      '10.1.2.3',
      '[::1]:8080',
      'host.docker.internal:8080',
      'box.local',
      'api.example.org',
      'API.example.org.:443',
    ]) {
      assert.equal((await exchange(port, request('GET', '/v1/models', { Host: host }))).status, 200, host);
    }
    for (const host of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io:8080', 'internal.evil.example', 'evil-local']) {
      const r = await exchange(port, request('GET', '/v1/models', { Host: host }));
      assert.equal(r.status, 403, host);
      assert.equal(errorObject(r, host).code, 'host_not_allowed');
    }
    // The check holds on every route (a rebound page could read /health) and for absolute-form targets.
    assert.equal((await exchange(port, request('GET', '/health', { Host: 'evil.example' }))).status, 403);
    assert.equal((await exchange(port, request('GET', 'http://evil.example/v1/models'))).status, 403);
    for (const host of ['a:b:c', 'x:99999', '[::1', 'a b', ':80']) {
      const r = await exchange(port, request('GET', '/v1/models', { Host: host }));
      assert.equal(r.status, 400, host);
      errorObject(r, host);
    }
    const twice = await exchange(port, Buffer.from('GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n'));
    assert.equal(twice.status, 400);
    const none = await exchange(port, Buffer.from('GET /v1/models HTTP/1.1\r\n\r\n'));
    assert.equal(none.status, 400);
    assert.equal(errorObject(none).code, 'invalid_host');
    assert.equal((await exchange(port, Buffer.from('GET /v1/models HTTP/1.0\r\n\r\n'))).status, 200, 'HTTP/1.0 has no Host');
  });
  await withApi(scripted('a'), { allowedHosts: ['*'] }, async (port) => {
    assert.equal((await exchange(port, request('GET', '/v1/models', { Host: 'anything.example' }))).status, 200);
  });
});

test('browsers: an Origin is answered only when --cors allows it; POST bodies must be application/json (a text/plain POST needs no preflight)', async () => {
  const backend = scripted('a');
  const chatBody = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
  await withApi(backend, {}, async (port) => {
    const r = await exchange(port, request('POST', '/v1/chat/completions', { Origin: 'http://evil.example', 'Content-Type': 'application/json' }, chatBody));
    assert.equal(r.status, 403);
    assert.equal(errorObject(r).code, 'origin_not_allowed');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal((await exchange(port, request('GET', '/v1/models', { Origin: 'null' }))).status, 403);
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      '',
    ]) {
      const t = await exchange(port, request('POST', '/v1/chat/completions', type === '' ? {} : { 'Content-Type': type }, chatBody));
      assert.equal(t.status, 415, type);
      assert.equal(errorObject(t, type).code, 'unsupported_media_type');
    }
    assert.equal(backend.seen.length, 0, 'nothing was generated');
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
      assert.equal((await exchange(port, request('POST', '/v1/chat/completions', { 'Content-Type': type }, chatBody))).status, 200, type);
    }
  });
  await withApi(scripted('a'), { cors: 'http://localhost:3000, https://app.example' }, async (port) => {
    const ok = await exchange(port, request('GET', '/v1/models', { Origin: 'https://app.example' }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    const pre = await exchange(port, request('OPTIONS', '/v1/chat/completions', { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' }));
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.match(pre.headers['access-control-allow-headers'] ?? '', /Authorization/);
    const asked = await exchange(
      port,
      request('OPTIONS', '/v1/chat/completions', {
        Origin: 'http://localhost:3000',
        'Access-Control-Request-Headers': 'authorization, content-type, x-stainless-os',
      }),
    );
    assert.equal(asked.headers['access-control-allow-headers'], 'authorization, content-type, x-stainless-os');
    assert.equal((await exchange(port, request('OPTIONS', '/v1/chat/completions', { Origin: 'http://evil.example' }))).status, 403);
  });
  await withApi(scripted('a'), { cors: '*' }, async (port) => {
    const any = await exchange(port, request('GET', '/v1/models', { Origin: 'http://anywhere.example' }));
    assert.equal(any.status, 200);
    assert.equal(any.headers['access-control-allow-origin'], '*');
  });
});

test('the API key: the Bearer scheme in any case (RFC 7235), anything else is a 401', async () => {
  await withApi(scripted('a'), { apiKey: 'sk-k' }, async (port) => {
    for (const auth of ['Bearer sk-k', 'bearer sk-k', 'BEARER sk-k', 'Bearer   sk-k']) {
      assert.equal((await exchange(port, request('GET', '/v1/models', { Authorization: auth }))).status, 200, auth);
    }
    for (const auth of ['sk-k', 'Bearer', 'Bearer ', 'Bearer sk-', 'Bearer sk-kk', 'Basic c2stazo=', 'Bearer sk-k extra', `Bearer ${'x'.repeat(8000)}`]) {
      const r = await exchange(port, request('GET', '/v1/models', { Authorization: auth }));
      assert.equal(r.status, 401, auth.slice(0, 40));
      assert.equal(errorObject(r).code, 'invalid_api_key');
    }
    assert.equal((await exchange(port, request('GET', '/v1/models'))).status, 401);
  });
});

test('a body over the limit with Content-Length and no Expect: the client reads the 413, its connection is not cut while it sends', async () => {
  await withApi(scripted('a'), {}, async (port) => {
    const body = Buffer.alloc(2 << 20, 'a');
    for (let i = 0; i < 10; i++) {
      for (const close of [true, false]) {
        const r = await exchange(
          port,
          request('POST', '/v1/chat/completions', { 'Content-Type': 'application/json', ...(close ? { Connection: 'close' } : {}) }, body),
          { pieceBytes: 65536 },
        );
        assert.equal(r.status, 413, `try ${i}, Connection: ${close ? 'close' : 'keep-alive'}`);
        assert.equal(r.error, null, `try ${i}: the connection failed under the client (${r.error})`);
        assert.equal(errorObject(r).code, 'request_too_large');
      }
    }
    // Expect: 100-continue: the 413 at once, and no body is asked for; within the limit, 100 then the answer.
    const refused = await exchange(
      port,
      request('POST', '/v1/chat/completions', { 'Content-Type': 'application/json', 'Content-Length': String(body.length), Expect: '100-continue' }),
    );
    assert.equal(refused.status, 413);
    assert.deepEqual(refused.interim, []);
    const small = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
    const ok = await exchange(
      port,
      request('POST', '/v1/chat/completions', { 'Content-Type': 'application/json', 'Content-Length': String(small.length), Expect: '100-continue' }),
      { afterContinue: small },
    );
    assert.deepEqual(ok.interim, [100]);
    assert.equal(ok.status, 200);
  });
});

test('clients that hang up: half a request, half a body; the server logs it, answers the next, and never says "internal error"', async () => {
  await withApi(scripted('a b c'), {}, async (port, lines) => {
    await exchange(port, Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty'), { hangUpAfterMs: 20 });
    await exchange(
      port,
      Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"messages": ['),
      { hangUpAfterMs: 20 },
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await health(port)).status, 200);
    assert.ok(
      lines.some((l) => /client left before sending the whole body/.test(l)),
      lines.join('\n'),
    );
    assert.ok(!lines.some((l) => /internal error/.test(l)), lines.join('\n'));
  });
});

test('outside text in log lines and messages is escaped and cut short: no forged lines, no terminal escapes', async () => {
  await withApi(scripted('a'), { maxBodyBytes: 100_000 }, async (port, lines) => {
    const model = `x\u001b[2J\u001b]0;owned\u0007\nFORGED 200 · fake${'y'.repeat(5000)}`;
    const r = await exchange(
      port,
      request('POST', '/v1/chat/completions', { 'Content-Type': 'application/json' }, JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] })),
    );
    assert.equal(r.status, 404);
    const e = errorObject(r);
    assert.ok(e.message.length < 400, 'the message quotes the model cut short');
    assert.ok(!/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(e.message), 'no control characters in the message');
    assert.equal(lines.length, 1);
    assert.ok(!/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(lines[0]!), lines[0]);
    assert.match(lines[0]!, /x\\x1b\[2J/);
  });
});

test('prompts past the context are refused before they are queued or tokenized, naming the field: prompt for completions, messages for chat', async () => {
  const backend = {
    ...scripted('a'),
    fewestTokens: (p: { prompt: string | readonly number[] }) => (typeof p.prompt === 'string' ? p.prompt.length : 0),
  } as ApiBackend & { seen: CompletionRequest[] };
  await withApi(backend, { maxBodyBytes: 100_000 }, async (port) => {
    const post = (path: string, body: object) => exchange(port, request('POST', path, { 'Content-Type': 'application/json' }, JSON.stringify(body)));
    const ids = await post('/v1/completions', { prompt: Array.from({ length: 101 }, () => 1) });
    assert.equal(ids.status, 400);
    assert.deepEqual([errorObject(ids).param, errorObject(ids).code], ['prompt', 'context_length_exceeded']);
    const text = await post('/v1/completions', { prompt: 'z'.repeat(101) });
    assert.equal(text.status, 400);
    assert.match(errorObject(text).message, /at least 101 tokens, longer than the context of 100/);
    assert.equal(errorObject(text).param, 'prompt');
    assert.equal(backend.seen.length, 0, 'never reached the engine');
  });
  // The engine's own refusal (a prompt the bound let through) names the field too.
  const full = {
    ...scripted('a'),
    complete: () => Promise.reject(Object.assign(new Error('the prompt is 600 tokens, longer than the context of 100'), { name: 'ContextFullError' })),
  };
  await withApi(full, {}, async (port) => {
    const r = await exchange(port, request('POST', '/v1/completions', { 'Content-Type': 'application/json' }, JSON.stringify({ prompt: 'x' })));
    assert.equal(r.status, 400);
    assert.equal(errorObject(r).param, 'prompt');
    const c = await exchange(
      port,
      request('POST', '/v1/chat/completions', { 'Content-Type': 'application/json' }, JSON.stringify({ messages: [{ role: 'user', content: 'x' }] })),
    );
    assert.equal(errorObject(c).param, 'messages');
  });
});

test('/health when the model is unavailable: 503 with an error object', async () => {
  const down = { ...scripted('a'), status: () => Promise.reject(new Error('no resident server holds it')) };
  await withApi(down, {}, async (port) => {
    const r = await health(port);
    assert.equal(r.status, 503);
    errorObject(r);
    assert.equal((JSON.parse(r.body) as { status: string }).status, 'unavailable');
  });
});

test('loopback addresses: all of 127.0.0.0/8, ::1 and localhost; nothing else', () => {
  for (const h of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST', 'a.localhost'])
    assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', '128.0.0.1', '::2', 'example.com', 'localhost.example.com', ''])
    assert.ok(!isLoopbackHost(h), h);
});
