import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type HubRepo, type HubServer, commitOf, sha256, startHub } from '../support/hub-server.js';
import { BIN, modelFixture, scratchDir } from '../support/paths.js';

function fixtureFiles(name: string): Map<string, Buffer> {
  const dir = modelFixture(name);
  return new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

const repos = new Map<string, HubRepo>([
  ['test-org/qwen', { files: fixtureFiles('qwen2'), commit: commitOf('cli-qwen') }],
  ['test-org/llama', { files: fixtureFiles('llama'), commit: commitOf('cli-llama') }],
]);

let hub: HubServer;
before(async () => {
  hub = await startHub(repos);
});
after(() => hub.close());

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs the CLI without blocking this process (the Hub it talks to lives here), with its own cache and HF home. */
function unicorn(args: string[], env: Record<string, string>, o: { onStart?: (kill: (s: NodeJS.Signals) => void) => void } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '', HOME: env['HF_HOME'] ?? '/nonexistent', HF_ENDPOINT: hub.endpoint, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
    o.onStart?.((s) => child.kill(s));
  });
}

function freshEnv(): Record<string, string> {
  const home = scratchDir('pull-home');
  return { HF_HOME: home, HF_HUB_CACHE: path.join(home, 'hub') };
}

describe('unicorn pull', () => {
  test('pulls into the cache; list, inspect and run then take the name; quiet off a terminal', async () => {
    const env = freshEnv();
    const r = await unicorn(['pull', 'test-org/qwen'], env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '', 'no progress display off a terminal');
    const commit = commitOf('cli-qwen');
    const dir = path.join(env['HF_HUB_CACHE']!, 'models--test-org--qwen', 'snapshots', commit);
    assert.match(
      r.out,
      new RegExp(
        `^test-org/qwen: 5 files, [\\d.]+ KB at ${commit.slice(0, 12)} \\([\\d.]+ KB downloaded\\)\\n  ${dir}\\n  run it: unicorn run test-org/qwen "your prompt"\\n$`,
      ),
    );
    const again = await unicorn(['pull', 'test-org/qwen'], env);
    assert.match(again.out, /\(already in the cache\)/);

    const list = await unicorn(['list'], env);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, new RegExp(`\\n  test-org/qwen +${commit.slice(0, 12)} +[\\d.]+ KB +safetensors +(bf16|f32|f16)`));
    const listJson = JSON.parse((await unicorn(['list', '--json'], env)).out) as { cached: { model: string; complete: boolean; path: string }[] };
    assert.deepEqual(
      listJson.cached.map((m) => [m.model, m.complete, m.path]),
      [['test-org/qwen', true, dir]],
    );

    const inspect = await unicorn(['inspect', 'test-org/qwen'], env);
    assert.equal(inspect.code, 0, inspect.err);
    assert.match(inspect.out, /architecture +Qwen2ForCausalLM/);
    assert.ok(inspect.out.includes(dir), 'inspect names the snapshot it read');

    const run = await unicorn(['run', 'test-org/qwen', 'Hello', '-n', '2', '--temp', '0', '--device', 'cpu'], env);
    assert.equal(run.code, 0, run.err);
    assert.match(run.err, /CPU \(TypeScript reference\)/);
    const byPath = await unicorn(['run', dir, 'Hello', '-n', '2', '--temp', '0', '--device', 'cpu'], env);
    assert.equal(run.out, byPath.out, 'the name and the snapshot path are the same model');
  });

  test('a model that is not cached: run and inspect name the pull to run; HF_HUB_OFFLINE pull says the same', async () => {
    const env = freshEnv();
    for (const args of [
      ['run', 'test-org/llama', 'Hello'],
      ['inspect', 'test-org/llama@v2'],
    ]) {
      const r = await unicorn(args, env);
      assert.equal(r.code, 1, r.err);
      assert.match(
        r.err,
        /^unicorn: test-org\/llama(@v2)? is not a path, and not in the Hugging Face cache \(.*\)\n {2}fix: download it with `unicorn pull test-org\/llama(@v2)?`\n$/,
      );
    }
    const offline = await unicorn(['pull', 'test-org/llama'], { ...env, HF_HUB_OFFLINE: '1' });
    assert.equal(offline.code, 1);
    assert.match(offline.err, /^unicorn: HF_HUB_OFFLINE is set, and test-org\/llama is not in the Hugging Face cache/);
    assert.ok(!hub.log.some((l) => l.path.includes('test-org/llama')), 'offline asks nothing');
  });

  test('errors are one line with a fix, never an internal error', async () => {
    const env = freshEnv();
    for (const [args, re] of [
      [['pull', 'gemma'], /^unicorn: "gemma" is not a Hugging Face model name\n {2}fix: name it as on its Hub page/],
      [
        ['pull', 'test-org/absent'],
        /^unicorn: test-org\/absent does not exist on http:\/\/127\.0\.0\.1:\d+, or it is private or gated and needs a token \(HTTP 401\)\n {2}fix: /,
      ],
      [['pull', 'test-org/qwen@nope'], /^unicorn: test-org\/qwen has no revision "nope" \(HTTP 404\)\n/],
    ] as const) {
      const r = await unicorn([...args], env);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, re);
      assert.doesNotMatch(r.err, /internal error|\n\s+at /);
    }
    const closed = await unicorn(['pull', 'test-org/qwen'], { ...env, HF_ENDPOINT: 'http://127.0.0.1:1' });
    assert.equal(closed.code, 1);
    assert.match(closed.err, /^unicorn: could not reach http:\/\/127\.0\.0\.1:1: the connection was refused\n/);
  });

  test('Ctrl-C mid-file: exit 130, a clear message, the partial file kept and no snapshot; the next pull resumes it', async () => {
    const env = freshEnv();
    const body = repos.get('test-org/llama')!.files.get('model.safetensors')!;
    const folder = path.join(env['HF_HUB_CACHE']!, 'models--test-org--llama');
    const partial = path.join(folder, 'blobs', `${sha256(body)}.incomplete`);
    hub.faults.stall = new Map([['model.safetensors', 200_000]]);
    let r: Result;
    try {
      r = await unicorn(['pull', 'test-org/llama'], env, {
        onStart: (kill) => {
          const poll = setInterval(() => {
            if ((fs.existsSync(partial) ? fs.statSync(partial).size : 0) >= 200_000) {
              clearInterval(poll);
              kill('SIGINT');
            }
          }, 20);
        },
      });
    } finally {
      hub.faults.stall = undefined;
    }
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /^unicorn: test-org\/llama: interrupted; .* are kept in the cache\n {2}fix: run `unicorn pull test-org\/llama` again to resume\n$/);
    assert.equal(fs.statSync(partial).size, 200_000);
    assert.equal(fs.existsSync(path.join(folder, 'snapshots')), false, 'nothing run would load');
    const start = hub.log.length;
    const resumed = await unicorn(['pull', 'test-org/llama'], env);
    assert.equal(resumed.code, 0, resumed.err);
    assert.ok(hub.log.slice(start).some((l) => l.server === 'cdn' && l.range === 'bytes=200000-'));
    assert.deepEqual(fs.readFileSync(path.join(folder, 'snapshots', commitOf('cli-llama'), 'model.safetensors')), body);
    assert.equal(fs.existsSync(partial), false);
  });
});
