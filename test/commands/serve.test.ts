/**
 * `unicorn serve` end to end: the real command on a fixture model, driven by the official `openai`
 * npm client (answers checked against transformers' greedy continuations), several clients at once
 * with one hanging up mid-stream, a server attached to a resident model (and finding it again after
 * it was stopped and loaded again), a prompt of megabytes refused while others are served, and a
 * bounded, seeded fuzz of bad requests over raw HTTP.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { Rng } from '../../src/engine/generate/sampler.js';
import { BIN, FIXTURES, modelFixture, scratchDir } from '../support/paths.js';
import { exchange, request } from '../engine/api/raw-http.js';

const model = modelFixture('llama');
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as {
  text: { prompt: string; ids: number[]; greedy: number[]; greedy_text: string };
  chat: { messages: { role: 'user'; content: string }[]; ids: number[]; greedy: number[]; greedy_text: string };
};
const runtime = scratchDir('serve-runtime');
const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: runtime };
const KEY = 'sk-test-unicorn';

interface Server {
  proc: ChildProcess;
  url: string;
  log: () => string;
}

/** Starts `unicorn serve` on a free port and waits for its address. */
function startServer(args: string[]): Promise<Server> {
  const proc = spawn(process.execPath, [BIN, 'serve', model, '--port', '0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /at (http:\/\/[^\s]+)\/v1/.exec(out);
      if (m !== null) resolve({ proc, url: m[1]!, log: () => err });
    });
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

function stopServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) {
      resolve();
      return;
    }
    s.proc.once('exit', () => resolve());
    s.proc.kill('SIGTERM');
  });
}

let server: Server;
let client: OpenAI;
before(async () => {
  server = await startServer(['--api-key', KEY, '--max-body', '0.05', '--max-queue', '8']);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  await stopServer(server);
  // A resident a failed test left behind, then the runtime folder.
  spawnSync(process.execPath, [BIN, 'stop'], { env });
  fs.rmSync(runtime, { recursive: true, force: true });
});

const chatGreedy = { model: 'llama', messages: ref.chat.messages, temperature: 0, max_tokens: ref.chat.greedy.length };

test("openai client: models, chat and completions (whole and streamed) give transformers' greedy text and usage", async () => {
  const models = await client.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['llama'],
  );

  const c = await client.chat.completions.create(chatGreedy);
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0]!.message.content, ref.chat.greedy_text);
  assert.equal(c.choices[0]!.finish_reason, 'length');
  assert.deepEqual(c.usage, {
    prompt_tokens: ref.chat.ids.length,
    completion_tokens: ref.chat.greedy.length,
    total_tokens: ref.chat.ids.length + ref.chat.greedy.length,
  });

  const stream = await client.chat.completions.create({ ...chatGreedy, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let first = true;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    const choice = ch.choices[0];
    if (choice === undefined) continue;
    if (first) {
      assert.equal(choice.delta.role, 'assistant');
      first = false;
    }
    text += choice.delta.content ?? '';
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(text, ref.chat.greedy_text);
  assert.equal(finish, 'length');
  assert.equal(usage?.completion_tokens, ref.chat.greedy.length);

  const t = await client.completions.create({ model: 'llama', prompt: ref.text.prompt, temperature: 0, max_tokens: ref.text.greedy.length });
  assert.equal(t.choices[0]!.text, ref.text.greedy_text);
  assert.equal(t.usage?.prompt_tokens, ref.text.ids.length);
  // The same prompt as token ids continues the same way; echo returns the prompt first.
  const ids = await client.completions.create({ model: 'llama', prompt: ref.text.ids, temperature: 0, max_tokens: ref.text.greedy.length });
  assert.equal(ids.choices[0]!.text, ref.text.greedy_text);
  const echo = await client.completions.create({ model: 'llama', prompt: ref.text.prompt, temperature: 0, max_tokens: 4, echo: true });
  assert.ok(echo.choices[0]!.text.startsWith(ref.text.prompt));

  let streamed = '';
  for await (const ch of await client.completions.create({
    model: 'llama',
    prompt: ref.text.prompt,
    temperature: 0,
    max_tokens: ref.text.greedy.length,
    stream: true,
  })) {
    streamed += ch.choices[0]?.text ?? '';
  }
  assert.equal(streamed, ref.text.greedy_text);
});

test('stop strings end the text before them (finish_reason stop); the same seed gives the same text', async () => {
  // transformers' greedy text is " ra ra ra ra rammmmmmmmmmm".
  const cut = ref.text.greedy_text.indexOf('mm');
  assert.ok(cut > 0);
  for (const stream of [false, true]) {
    const req = { model: 'llama', prompt: ref.text.prompt, temperature: 0, max_tokens: ref.text.greedy.length, stop: ['mm', 'zzz'] };
    let text = '';
    let finish: string | null = null;
    if (stream) {
      for await (const ch of await client.completions.create({ ...req, stream: true })) {
        text += ch.choices[0]?.text ?? '';
        finish = ch.choices[0]?.finish_reason ?? finish;
      }
    } else {
      const r = await client.completions.create(req);
      text = r.choices[0]!.text;
      finish = r.choices[0]!.finish_reason;
    }
    assert.equal(text, ref.text.greedy_text.slice(0, cut), `stream: ${stream}`);
    assert.equal(finish, 'stop');
  }
  const sampled = async (seed: number) =>
    (
      await client.chat.completions.create({
        model: 'llama',
        messages: ref.chat.messages,
        temperature: 1,
        top_p: 1,
        seed,
        max_tokens: 10,
      })
    ).choices[0]!.message.content;
  const a = await sampled(1234);
  assert.equal(await sampled(1234), a, 'same seed, same text');
  assert.equal(await sampled(1234), a, 'and again (cache reused)');
  assert.notEqual(await sampled(99), a, 'another seed, another text');
  // Presence and frequency penalties are honoured (they change what is sampled, seed fixed).
  const penalised = (await client.chat.completions.create({ ...chatGreedy, frequency_penalty: 2, presence_penalty: 2, max_tokens: 24 })).choices[0]!.message
    .content;
  const plain = (await client.chat.completions.create({ ...chatGreedy, max_tokens: 24 })).choices[0]!.message.content;
  assert.notEqual(penalised, plain);
});

test('errors come as OpenAI error objects: key, model, context, parameters', async () => {
  const anon = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(anon.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(
    client.chat.completions.create({ ...chatGreedy, model: 'gpt-4o' }),
    (e: unknown) => e instanceof OpenAI.NotFoundError && /gpt-4o/.test(e.message),
  );
  const long = 'the sea '.repeat(400);
  await assert.rejects(
    client.completions.create({ model: 'llama', prompt: long, max_tokens: 4 }),
    (e: unknown) =>
      e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && e.param === 'prompt' && /longer than the context of 512/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ ...chatGreedy, messages: [{ role: 'user', content: long }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && e.param === 'messages',
  );
  await assert.rejects(
    client.chat.completions.create({ ...chatGreedy, max_tokens: -1 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens',
  );
  await assert.rejects(
    client.chat.completions.create({ ...chatGreedy, temperature: 7 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
  await assert.rejects(client.chat.completions.create({ ...chatGreedy, n: 3 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'n');
  // /health answers without the key.
  const h = (await (await fetch(`${server.url}/health`)).json()) as { status: string; model: string; queue: { active: number; waiting: number } };
  assert.equal(h.status, 'ok');
  assert.equal(h.model, 'llama');
});

test('concurrency: clients are served in order and each gets its own answer; one hanging up mid-stream frees its turn at once', async () => {
  const prompts = ['The history of the', 'Once upon a time', 'The sea is', 'In the beginning'];
  const solo: string[] = [];
  for (const p of prompts) solo.push((await client.completions.create({ model: 'llama', prompt: p, temperature: 0, max_tokens: 12 })).choices[0]!.text);
  // A long streamed reply whose client leaves after the first piece of text, among the others.
  const abort = new AbortController();
  const leaver = (async () => {
    const s = await client.chat.completions.create({ ...chatGreedy, max_tokens: 400, stream: true }, { signal: abort.signal });
    let pieces = 0;
    try {
      for await (const ch of s) {
        if ((ch.choices[0]?.delta.content ?? '') !== '' && ++pieces === 1) abort.abort();
      }
    } catch (e) {
      if (!(e instanceof Error && /abort/i.test(e.name + e.message))) throw e;
    }
    return pieces;
  })();
  const together = await Promise.all(prompts.map((p) => client.completions.create({ model: 'llama', prompt: p, temperature: 0, max_tokens: 12 })));
  assert.equal(await leaver, 1);
  assert.deepEqual(
    together.map((r) => r.choices[0]!.text),
    solo,
    'answers do not depend on who else is asking',
  );
  // The server noticed the hang-up and stopped that generation well short of its 400 tokens.
  await waitFor(() => /client left · (\d+) tokens/.test(server.log()));
  const left = Number(/client left · (\d+) tokens/.exec(server.log())![1]);
  assert.ok(left < 400, `stopped after ${left} tokens`);
  const h = (await (await fetch(`${server.url}/health`)).json()) as { queue: { active: number; waiting: number } };
  assert.deepEqual(h.queue, { active: 0, waiting: 0 });
  // And it still answers.
  assert.equal((await client.chat.completions.create(chatGreedy)).choices[0]!.message.content, ref.chat.greedy_text);
});

async function waitFor(ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One raw HTTP exchange (so the fuzz can send what no client library would). */
function raw(url: string, request: string | Buffer): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => {
      if (chunks.length === 0) reject(e);
    });
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    // Not half-closed: Node's HTTP server takes a client's FIN as leaving (the request is aborted).
    s.setTimeout(20_000, () => s.destroy());
    s.write(request);
  });
}

const post = (p: string, body: string | Buffer, headers = '') =>
  Buffer.concat([
    Buffer.from(
      `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${headers}\r\n`,
    ),
    Buffer.from(body),
  ]);

test('bounded fuzz: 300 malformed or ill-typed requests all get a 4xx with an error object; the server stays up and correct', async () => {
  const rng = new Rng(20261123);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  const junk: unknown[] = [null, true, -1, 1.5, 1e308, 'x', '', [], [1, 'a'], {}, { a: 1 }, -(2 ** 63), 'NaN', [[[]]]];
  const fields = [
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
    'presence_penalty',
    'frequency_penalty',
    'stream_options',
    'logprobs',
    'tools',
    'response_format',
    'echo',
    'suffix',
    'logit_bias',
    'repetition_penalty',
  ];
  const base = {
    chat: { model: 'llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 },
    completions: { model: 'llama', prompt: 'hi', max_tokens: 2 },
  };
  let served = 0;
  for (let i = 0; i < 300; i++) {
    const endpoint = pick(['chat', 'completions'] as const);
    const p = endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const kind = Math.floor(rng.next() * 6);
    let request: Buffer;
    if (kind === 0) {
      // Valid JSON, one field replaced by junk.
      const body: Record<string, unknown> = { ...base[endpoint], [pick(fields)]: pick(junk) };
      request = post(p, JSON.stringify(body));
    } else if (kind === 1) {
      // Truncated JSON.
      const text = JSON.stringify(base[endpoint]);
      request = post(p, text.slice(0, Math.floor(rng.next() * (text.length - 1))));
    } else if (kind === 2) {
      // Random bytes.
      request = post(p, Buffer.from(Array.from({ length: 1 + Math.floor(rng.next() * 64) }, () => Math.floor(rng.next() * 256))));
    } else if (kind === 3) {
      // Messages with bad shapes.
      request = post(
        '/v1/chat/completions',
        JSON.stringify({
          model: 'llama',
          max_tokens: 2,
          messages: pick([
            [{ role: 'robot', content: 'x' }],
            [{ content: 'x' }],
            [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }],
            ['x'],
            [{ role: 'user', content: 5 }],
            [{ role: 'tool', content: 'x' }],
          ]),
        }),
      );
    } else if (kind === 4) {
      // Oversized (the server's limit is 0.05 MB), with and without an honest Content-Length.
      const big = JSON.stringify({ ...base.completions, prompt: 'a'.repeat(60_000 + Math.floor(rng.next() * 10_000)) });
      request =
        rng.next() < 0.5
          ? post(p, big)
          : Buffer.from(
              `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
            );
    } else {
      // Wrong method, unknown path, no key, or broken HTTP.
      request = Buffer.from(
        pick([
          `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`,
          `POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
          `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
          `BREW ${p} HTCPCP/1.0\r\n\r\n`,
          `POST ${p} HTTP/1.1\r\nContent-Length: -5\r\n\r\n`,
          'GARBAGE\r\n\r\n',
        ]),
      );
    }
    const r = await raw(server.url, request);
    assert.notEqual(r.status, 403, `request ${i} was refused before it was looked at: ${r.body.slice(0, 200)}`);
    if (r.status === 200) {
      served++;
      continue;
    } // junk that happened to be acceptable (e.g. stream: true)
    assert.ok(
      r.status >= 400 && r.status < 500,
      `request ${i} (kind ${kind}) got ${r.status}: ${r.body.slice(0, 200)}\n${request.toString('latin1').slice(0, 600)}`,
    );
    const e = JSON.parse(r.body) as { error: { message: string; type: string } };
    assert.equal(typeof e.error.message, 'string');
    assert.equal(e.error.type, 'invalid_request_error');
  }
  assert.ok(served < 150, `${served} of 300 fuzzed requests were accepted`);
  assert.equal(server.proc.exitCode, null, 'the server is still running');
  assert.equal((await client.chat.completions.create(chatGreedy)).choices[0]!.message.content, ref.chat.greedy_text);
});

const keepModel = () => {
  const keep = spawnSync(process.execPath, [BIN, 'load', model, '--keep', '--json'], { env, encoding: 'utf8' });
  assert.equal(keep.status, 0, keep.stderr);
  return JSON.parse(keep.stdout).pid as number;
};

test(
  'serve on a resident model (unicorn load --keep) answers through it; /health in the middle of an answer disturbs neither',
  { timeout: 90_000 },
  async () => {
    const pid = keepModel();
    const s = await startServer([]);
    try {
      assert.match(s.log(), new RegExp(`using the resident .* \\(pid ${pid}`));
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
      assert.equal((await c.chat.completions.create(chatGreedy)).choices[0]!.message.content, ref.chat.greedy_text);
      const h = (await (await fetch(`${s.url}/health`)).json()) as { resident: boolean };
      assert.equal(h.resident, true);
      await assert.rejects(
        c.completions.create({ model: 'llama', prompt: 'the sea '.repeat(400), max_tokens: 2 }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
      );
      // Megabytes of prompt are refused here, before the resident tokenizes them.
      const huge = 'The sea is wide and deep. '.repeat(250_000);
      await assert.rejects(
        c.completions.create({ model: 'llama', prompt: huge, max_tokens: 2 }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'prompt' && /at least \d+ tokens/.test(e.message),
      );
      await assert.rejects(
        c.chat.completions.create({ ...chatGreedy, messages: [{ role: 'user', content: huge }] }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages' && /at least \d+ tokens/.test(e.message),
      );
      // /health while a streamed answer is running (they used to share one connection, and the
      // answer was lost): both answer, the stream whole.
      let healthy = 0;
      let finish: string | null = null;
      let tokens = 0;
      const stream = await c.chat.completions.create(
        { ...chatGreedy, max_tokens: 300, stream: true, stream_options: { include_usage: true } },
        { timeout: 30_000 },
      );
      for await (const ch of stream) {
        if (healthy === 0) healthy = (await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(10_000) })).status;
        finish = ch.choices[0]?.finish_reason ?? finish;
        tokens = ch.usage?.completion_tokens ?? tokens;
      }
      assert.equal(healthy, 200);
      assert.equal(finish, 'length');
      assert.equal(tokens, 300);
    } finally {
      await stopServer(s);
      spawnSync(process.execPath, [BIN, 'stop'], { env });
    }
  },
);

test(
  'a serve on a resident model that is stopped: a clear 503 (not a 500 forever), and once it is loaded again the next request finds it',
  { timeout: 90_000 },
  async () => {
    const pid = keepModel();
    const s = await startServer([]);
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 20_000 });
      assert.equal((await c.chat.completions.create(chatGreedy)).choices[0]!.message.content, ref.chat.greedy_text);
      assert.equal(spawnSync(process.execPath, [BIN, 'stop'], { env }).status, 0);
      await waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
      await assert.rejects(
        c.chat.completions.create(chatGreedy),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 503 && e.code === 'model_not_loaded' && /no resident server holds 'llama'/.test(e.message),
      );
      const down = await fetch(`${s.url}/health`);
      assert.equal(down.status, 503);
      assert.equal(((await down.json()) as { error: { code: string } }).error.code, 'model_not_loaded');
      const again = keepModel();
      assert.notEqual(again, pid);
      assert.equal((await c.chat.completions.create(chatGreedy)).choices[0]!.message.content, ref.chat.greedy_text);
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      assert.ok(!/internal error/.test(s.log()), s.log());
    } finally {
      await stopServer(s);
      spawnSync(process.execPath, [BIN, 'stop'], { env });
    }
  },
);

test('a 7 MB prompt is refused at once (context_length_exceeded, naming the field) while /health keeps answering', { timeout: 90_000 }, async () => {
  const s = await startServer(['--max-body', '16']);
  try {
    const huge = 'The sea is wide and deep, and the ships go on it. '.repeat(140_000);
    for (const [route, body, param] of [
      ['/v1/completions', { model: 'llama', prompt: huge, max_tokens: 2 }, 'prompt'],
      ['/v1/chat/completions', { model: 'llama', messages: [{ role: 'user', content: huge }], max_tokens: 2 }, 'messages'],
    ] as const) {
      let answered = false;
      let slowest = 0;
      const polls = (async () => {
        while (!answered) {
          const t0 = performance.now();
          assert.equal((await fetch(`${s.url}/health`)).status, 200);
          slowest = Math.max(slowest, performance.now() - t0);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const t0 = performance.now();
      const r = await fetch(`${s.url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const seconds = (performance.now() - t0) / 1000;
      answered = true;
      await polls;
      assert.equal(r.status, 400, route);
      const e = ((await r.json()) as { error: { code: string; param: string; message: string } }).error;
      assert.deepEqual([e.code, e.param], ['context_length_exceeded', param]);
      assert.match(e.message, /at least \d+ tokens, longer than the context of 512/);
      // Tokenizing it took many seconds, every client waiting; the bound takes milliseconds (loose limits: CI machines are shared).
      assert.ok(seconds < 5, `answered in ${seconds.toFixed(1)} s`);
      assert.ok(slowest < 2000, `/health took up to ${slowest.toFixed(0)} ms`);
    }
    assert.ok(!/internal error/.test(s.log()), s.log());
  } finally {
    await stopServer(s);
  }
});

test('--host anywhere in 127.0.0.0/8 is loopback: no warning that others can reach the model; --allowed-hosts adds Host names', async () => {
  const s = await startServer(['--host', '127.0.0.2', '--allowed-hosts', 'api.example, other.example']);
  try {
    assert.match(s.url, /^http:\/\/127\.0\.0\.2:/);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    assert.ok(!/warning/.test(s.log()), s.log());
    const port = Number(new URL(s.url).port);
    const ask = (host: string) => exchange(port, request('GET', '/health', { Host: host }), { address: '127.0.0.2' });
    assert.equal((await ask('api.example')).status, 200);
    assert.equal((await ask('other.example:8080')).status, 200);
    assert.equal((await ask('evil.example')).status, 403);
  } finally {
    await stopServer(s);
  }
});

test('a port in use is a clear error', async () => {
  const port = Number(new URL(server.url).port);
  const r = spawnSync(process.execPath, [BIN, 'serve', model, '--port', String(port)], { env, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`port ${port} on 127.0.0.1 is already in use`));
});
