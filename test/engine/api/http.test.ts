/**
 * The HTTP layer over a scripted backend (no model): CORS, the queue's limit and order, a failure in
 * the middle of a stream, body limits and methods. The real model behind it is tested in
 * test/commands/serve.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ApiBackend, startApi } from '../../../src/engine/api/http.js';
import type { CompletionRequest, CompletionResult } from '../../../src/engine/generate/complete.js';

/** A backend that says `reply` word by word, after `gate` opens. */
function scripted(reply: string, opts: { failAfter?: number; gate?: Promise<void> } = {}): ApiBackend & { seen: CompletionRequest[] } {
  const seen: CompletionRequest[] = [];
  return {
    seen, modelId: 'fake', ctx: 100, defaults: { temperature: 0 }, chat: true,
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
      return { text: words.slice(0, n).join(''), tokens: Array.from({ length: n }, (_, i) => i), finish: 'eos', promptTokens: 3, contextLimit: 100, device: 'fake', timeToFirstTokenMs: 1, prefillTokensPerSecond: null, decodeTokensPerSecond: null };
    },
    status: () => Promise.resolve({ device: 'fake', contextUsed: 0, gpuBytes: null, resident: false }),
  };
}

const base = { host: '127.0.0.1', port: 0, maxBodyBytes: 1000, maxQueue: 2, version: 'test' };
const chat = (extra: object = {}) => ({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...extra }) });

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
  const gate = new Promise<void>((r) => { open = r; });
  const backend = scripted('x y', { gate });
  const api = await startApi(backend, base);
  try {
    const first = fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await new Promise((r) => setTimeout(r, 50));
    const waiting = [fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 2 })), fetch(`${api.url}/v1/chat/completions`, chat({ max_tokens: 3 }))];
    await new Promise((r) => setTimeout(r, 50));
    const health = await (await fetch(`${api.url}/health`)).json() as { queue: { active: number; waiting: number } };
    assert.deepEqual(health.queue, { active: 1, waiting: 2 });
    const over = await fetch(`${api.url}/v1/chat/completions`, chat());
    assert.equal(over.status, 503);
    assert.equal(((await over.json()) as { error: { code: string } }).error.code, 'server_busy');
    open();
    for (const r of [first, ...waiting]) assert.equal((await r).status, 200);
    assert.deepEqual(backend.seen.map((s) => s.maxTokens), [1, 2, 3], 'served in arrival order');
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
    const declared = await fetch(`${api.url}/v1/chat/completions`, { method: 'POST', body: big });
    assert.equal(declared.status, 413);
    const streamed = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST', body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(big)); c.close(); } }), duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal((await fetch(`${api.url}/v1/chat/completions`, { method: 'POST' })).status, 400);
    const get = await fetch(`${api.url}/v1/completions`);
    assert.equal(get.status, 405);
    // Still serving.
    assert.equal((await fetch(`${api.url}/v1/chat/completions`, chat())).status, 200);
  } finally {
    await api.close();
  }
});
