/**
 * The resident model server: load --keep, ps, run and chat attaching to it, stop; a socket left by a
 * dead server; a client that disconnects mid-generation; owner-only permissions; stop with clients
 * attached; concurrent load --keep of one model; real paths in ps and stop. (Attacks on the socket
 * and the runtime folder: test/engine/server/.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { BIN, FIXTURES, modelFixture, scratchDir } from '../support/paths.js';
import { alive, cli, keptPid, kill } from '../engine/server/harness.js';
import { residentArgs } from '../../src/commands/resident.js';

const runtime = scratchDir('runtime');
const pids: (number | undefined)[] = [];
/** Ends every server a test started, whatever happened in it (so one failing test does not leave a server for the next). */
function cleanUp(): void {
  spawnSync(process.execPath, [BIN, 'stop'], { env, encoding: 'utf8' });
  for (const p of pids.splice(0)) kill(p);
}
after(() => {
  cleanUp();
  fs.rmSync(runtime, { recursive: true, force: true });
});
const env = { ...process.env, UNICORN_VALIDATION: '0', XDG_RUNTIME_DIR: runtime };
const unicorn = (args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, input });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const model = modelFixture('llama');
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as {
  text: { prompt: string; greedy_text: string };
  chat: { messages: { content: string }[]; greedy_text: string; greedy: number[] };
};

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
  const sock = path.join(
    dir,
    fs.readdirSync(dir).find((n) => n.endsWith('.sock'))!,
  );
  assert.ok(fs.existsSync(sock), 'the dead server left its socket');
  assert.match(unicorn(['ps']).out, /no resident models/);
  const second = JSON.parse(unicorn(['load', model, '--keep', '--json']).out);
  assert.notEqual(second.pid, first.pid);
  // A client asks for a long reply and hangs up after the first words.
  await new Promise<void>((resolve) => {
    const c = net.connect(sock, () => {
      c.write(
        `${JSON.stringify({ op: 'complete', req: { prompt: 'x', chat: false, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 1 }, maxTokens: 400, stop: [] } })}\n`,
      );
    });
    c.on('data', () => {
      c.destroy();
      resolve();
    });
  });
  const after = unicorn(['run', model, ref.text.prompt, '-n', '16', '--temp', '0', '--json']);
  assert.equal(after.code, 0, after.err);
  assert.equal(JSON.parse(after.out).text, ref.text.greedy_text);
  assert.equal(unicorn(['stop', model]).code, 0);
});

/** A raw client of the resident socket that records what it gets and when it is closed. */
function attach(sock: string, request?: object): Promise<{ got: () => string; closed: Promise<void> }> {
  return new Promise((resolve) => {
    let got = '';
    const c = net.connect(sock);
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    c.on('error', () => {});
    c.on('data', (d) => {
      got += d.toString('utf8');
      if (request !== undefined) resolve({ got: () => got, closed });
    });
    c.on('connect', () => {
      if (request === undefined) resolve({ got: () => got, closed });
      else c.write(`${JSON.stringify(request)}\n`);
    });
  });
}

test('stop with clients attached ends the server: they are cut off with an error, the process is gone when stop says so; the next load --keep is the only server', async (t) => {
  t.after(cleanUp);
  const first = await cli(['load', model, '--keep', '--json'], { env });
  pids.push(keptPid(first));
  assert.equal(first.code, 0, first.err);
  const pid = JSON.parse(first.out).pid as number;
  const dir = path.join(runtime, 'unicorn');
  const sock = path.join(
    dir,
    fs.readdirSync(dir).find((n) => n.endsWith('.sock'))!,
  );
  const idle = await attach(sock);
  const busy = await attach(sock, {
    op: 'complete',
    req: {
      prompt: 'x',
      chat: false,
      sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 64, seed: 1 },
      maxTokens: 400,
      stop: [],
    },
  });
  const stop = await cli(['stop', model], { env });
  assert.equal(stop.code, 0, stop.err);
  assert.match(stop.out, /stopped/);
  assert.ok(!alive(pid), `pid ${pid} is gone once stop has said "stopped"`);
  await Promise.all([idle.closed, busy.closed]);
  assert.match(busy.got(), /"op":"error".*the resident server was stopped/, 'the client mid-generation was told why');
  assert.match((await cli(['ps'], { env })).out, /no resident models/);
  const second = await cli(['load', model, '--keep', '--json'], { env });
  pids.push(keptPid(second));
  assert.equal(second.code, 0, second.err);
  assert.notEqual(JSON.parse(second.out).pid, pid);
  const ps = JSON.parse((await cli(['ps', '--json'], { env })).out) as { pid: number }[];
  assert.deepEqual(
    ps.map((i) => i.pid),
    [JSON.parse(second.out).pid],
    'one server, the new one, with its socket',
  );
  assert.equal((await cli(['stop'], { env })).code, 0);
  assert.deepEqual(fs.readdirSync(dir), [], 'a clean stop leaves no socket, lock or log');
});

test('concurrent load --keep of one model: one server loads it, every caller gets that server, its log is intact', async (t) => {
  t.after(cleanUp);
  const all = await Promise.all([0, 1, 2].map(() => cli(['load', model, '--keep', '--json'], { env })));
  for (const r of all) pids.push(keptPid(r));
  for (const r of all) assert.equal(r.code, 0, r.err);
  const served = new Set(all.map((r) => JSON.parse(r.out).pid as number));
  assert.equal(served.size, 1, `one server: ${[...served].join(', ')}`);
  const [pid] = [...served];
  const ps = JSON.parse((await cli(['ps', '--json'], { env })).out) as { pid: number }[];
  assert.deepEqual(
    ps.map((i) => i.pid),
    [pid],
  );
  const dir = path.join(runtime, 'unicorn');
  const log = fs.readFileSync(
    path.join(
      dir,
      fs.readdirSync(dir).find((n) => n.endsWith('.log'))!,
    ),
    'utf8',
  );
  assert.match(log, /^serving /, "the live server's log is its own");
  assert.doesNotMatch(log, /already/, 'no loser wrote into it');
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => !/^model-[0-9a-f]{16}\.(sock|lock|log)$/.test(n)),
    [],
    'no temporary log left behind',
  );
  assert.equal((await cli(['stop'], { env })).code, 0);
});

test('resident servers are known by real paths: loaded by a relative path or a symlink, listed by the real one, stopped from any folder', async (t) => {
  t.after(cleanUp);
  const models = path.dirname(model);
  const elsewhere = scratchDir('elsewhere');
  try {
    const link = path.join(elsewhere, 'linked');
    fs.symlinkSync(model, link);
    const real = fs.realpathSync(model);
    const keep = await cli(['load', path.basename(model), '--keep', '--json'], { env, cwd: models });
    pids.push(keptPid(keep));
    assert.equal(keep.code, 0, keep.err);
    assert.equal(JSON.parse(keep.out).model, real);
    assert.equal(JSON.parse((await cli(['ps', '--json'], { env, cwd: elsewhere })).out)[0].model, real);
    const run = await cli(['run', link, ref.text.prompt, '-n', '4', '--temp', '0'], { env, cwd: elsewhere });
    assert.match(run.err, /using the resident /, 'a symlink to the model finds its server');
    const stopAll = await cli(['stop'], { env, cwd: elsewhere });
    assert.equal(stopAll.code, 0, stopAll.err);
    assert.equal(stopAll.out.trim(), `stopped ${real}`);
    const again = await cli(['load', link, '--keep', '--json'], { env, cwd: elsewhere });
    pids.push(keptPid(again));
    assert.equal(JSON.parse(again.out).model, real);
    const stopNamed = await cli(['stop', path.basename(model)], { env, cwd: elsewhere });
    assert.equal(stopNamed.code, 0, stopNamed.err);
    assert.match((await cli(['ps'], { env })).out, /no resident models/);
    const none = await cli(['stop', 'no-such-model'], { env, cwd: elsewhere });
    assert.equal(none.code, 1);
    assert.match(none.err, /no resident server holds no-such-model/);
  } finally {
    fs.rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('a server removes only the socket it made: one put in its place since is left when it ends', async (t) => {
  t.after(cleanUp);
  const keep = await cli(['load', model, '--keep', '--json'], { env });
  pids.push(keptPid(keep));
  assert.equal(keep.code, 0, keep.err);
  const pid = JSON.parse(keep.out).pid as number;
  const dir = path.join(runtime, 'unicorn');
  const sock = path.join(
    dir,
    fs.readdirSync(dir).find((n) => n.endsWith('.sock'))!,
  );
  fs.rmSync(sock);
  const other = net.createServer((c) => c.end());
  await new Promise<void>((r) => other.listen(sock, () => r()));
  try {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(!alive(pid), 'the server ended on SIGTERM');
    assert.ok(fs.existsSync(sock), 'the socket that is not its own is still there');
    assert.ok(!fs.existsSync(path.join(dir, fs.readdirSync(dir).find((n) => n.endsWith('.lock')) ?? 'none')), 'its lock went with it');
  } finally {
    await new Promise<void>((r) => other.close(() => r()));
  }
});

test('load --keep --kv-cache q8: the server is started with it, keeps it and reports it (load, ps, run and chat attaching); a differing --kv-cache or --ctx attaches, saying it is not applied', async (t) => {
  t.after(cleanUp);
  assert.deepEqual(residentArgs({}), []);
  assert.deepEqual(residentArgs({ ctx: 64, gpu: '0', kvCache: 'q8' }), ['--ctx', '64', '--gpu', '0', '--kv-cache', 'q8']);
  const q8model = modelFixture('gemma3-text'); // head_dim 32: takes q8
  const keep = await cli(['load', q8model, '--keep', '--kv-cache', 'q8', '--ctx', '64', '--json'], { env });
  pids.push(keptPid(keep));
  assert.equal(keep.code, 0, keep.err);
  const info = JSON.parse(keep.out);
  assert.equal(info.kvCache, 'q8');
  assert.equal(info.ctx, 64);
  const ps = JSON.parse((await cli(['ps', '--json'], { env })).out) as { pid: number; kvCache: string }[];
  assert.deepEqual(
    ps.map((i) => [i.pid, i.kvCache]),
    [[info.pid, 'q8']],
  );
  const table = (await cli(['ps'], { env })).out.split('\n');
  assert.match(table[0]!, /context +kv cache +loaded/);
  assert.match(table[1]!, / 0 \/ 64 +q8 +\d{4}-/);
  // Another --kv-cache (or --ctx) than the resident's: the resident model answers, as it was loaded, and says what it has.
  const run = await cli(['run', q8model, 'hi', '-n', '3', '--temp', '0', '--kv-cache', 'f16', '--ctx', '128'], { env });
  assert.equal(run.code, 0, run.err);
  assert.match(run.err, new RegExp(`using the resident .* \\(pid ${info.pid}, .*, context 64, KV cache q8\\); --ctx 128 and --kv-cache f16 not applied: \`unicorn stop\` it and load again`));
  const chat = await cli(['chat', q8model, '--temp', '0', '-n', '3'], { env, input: 'hi\n' });
  assert.equal(chat.code, 0, chat.err);
  assert.match(chat.err, /context 64, KV cache q8\)\n/, 'nothing asked that differs: nothing said of it');
  const again = await cli(['load', q8model, '--keep', '--json'], { env });
  assert.equal(again.code, 0, again.err);
  assert.deepEqual([JSON.parse(again.out).pid, JSON.parse(again.out).kvCache], [info.pid, 'q8'], 'the one server, its cache as loaded');
  assert.equal((await cli(['stop'], { env })).code, 0);
  // A model whose heads do not take q8: refused before any server starts.
  const before = fs.readdirSync(path.join(runtime, 'unicorn')); // an earlier test's crash may have left a log
  const bad = await cli(['load', model, '--keep', '--kv-cache', 'q8', '--json'], { env });
  pids.push(keptPid(bad));
  assert.equal(bad.code, 1, bad.err);
  assert.match(bad.err, /--kv-cache q8: this model's head_dim 16 is not a multiple of 32/);
  assert.doesNotMatch(bad.err, /exited while loading/, 'refused here, not by a server that failed');
  assert.deepEqual(fs.readdirSync(path.join(runtime, 'unicorn')), before, 'no socket, lock or log made');
});
