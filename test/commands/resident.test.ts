/**
 * The resident model server: load --keep, ps, run and chat attaching to it, stop; a socket left by a
 * dead server; a client that disconnects mid-generation; owner-only permissions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { BIN, FIXTURES, modelFixture, scratchDir } from '../support/paths.js';

const runtime = scratchDir('runtime');
const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: runtime };
const unicorn = (args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, input });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const model = modelFixture('llama');
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as { text: { prompt: string; greedy_text: string }; chat: { messages: { content: string }[]; greedy_text: string; greedy: number[] } };

test('load --keep, then run and chat attach to it, ps lists it, stop unloads it', () => {
  const keep = unicorn(['load', model, '--keep', '--json']);
  assert.equal(keep.code, 0, keep.err);
  const info = JSON.parse(keep.out);
  const dir = path.join(runtime, 'unicorn');
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  const sock = fs.readdirSync(dir).find((n) => n.endsWith('.sock'))!;
  assert.equal(fs.statSync(path.join(dir, sock)).mode & 0o777, 0o600);
  const ps = unicorn(['ps', '--json']);
  assert.equal(JSON.parse(ps.out)[0].pid, info.pid);
  const run = unicorn(['run', model, ref.text.prompt, '-n', '16', '--temp', '0', '--json']);
  assert.equal(run.code, 0, run.err);
  assert.match(run.err, new RegExp(`using the resident .* \\(pid ${info.pid}`));
  assert.equal(JSON.parse(run.out).text, ref.text.greedy_text);
  const chat = unicorn(['chat', model, '--temp', '0', '-n', String(ref.chat.greedy.length)], `${ref.chat.messages[0]!.content}\n`);
  assert.equal(chat.code, 0, chat.err);
  assert.equal(chat.out.split('\n')[0], ref.chat.greedy_text);
  const stop = unicorn(['stop']);
  assert.equal(stop.code, 0, stop.err);
  assert.match(unicorn(['ps']).out, /no resident models/);
});

test('a socket left by a dead server is detected and replaced; a client that disconnects mid-reply does not stop the server', async () => {
  const first = JSON.parse(unicorn(['load', model, '--keep', '--json']).out);
  process.kill(first.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 200));
  const dir = path.join(runtime, 'unicorn');
  const sock = path.join(dir, fs.readdirSync(dir).find((n) => n.endsWith('.sock'))!);
  assert.ok(fs.existsSync(sock), 'the dead server left its socket');
  assert.match(unicorn(['ps']).out, /no resident models/);
  const second = JSON.parse(unicorn(['load', model, '--keep', '--json']).out);
  assert.notEqual(second.pid, first.pid);
  // A client asks for a long reply and hangs up after the first words.
  await new Promise<void>((resolve) => {
    const c = net.connect(sock, () => {
      c.write(`${JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 1 }, maxTokens: 400, stop: [] } })}\n`);
    });
    c.on('data', () => { c.destroy(); resolve(); });
  });
  const after = unicorn(['run', model, ref.text.prompt, '-n', '16', '--temp', '0', '--json']);
  assert.equal(after.code, 0, after.err);
  assert.equal(JSON.parse(after.out).text, ref.text.greedy_text);
  assert.equal(unicorn(['stop', model]).code, 0);
});
