/**
 * The bundled model (models/kjv-tiny): `unicorn run` with no model uses it and says so, and greedy
 * generation on this machine's Vulkan device gives exactly the continuations recorded when it was
 * built (scripts/demo-model/build.ts), which matched transformers' on the bf16 original.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BUNDLED_MODEL } from '../../src/engine/bundled.js';
import { openRunner } from '../../src/engine/generate/runner.js';
import { GREEDY } from '../../src/engine/generate/sampler.js';
import { BIN, ROOT } from '../support/paths.js';

interface Build {
  scheme: string;
  bytes: number;
  againstTransformers: { shipped: { meanKl: number; top1: number } };
  greedy: { prompt: string; ids: number[]; tokens: number[]; text: string; transformersOriginalAgreesFor: number }[];
}
const build = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL, 'build-report.json'), 'utf8')) as Build;
const env = { ...process.env, UNICORN_VALIDATION: '0' };

test('the bundled model ships in the package, small, with its reports', () => {
  assert.equal(BUNDLED_MODEL, path.join(ROOT, 'models', 'kjv-tiny'));
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('models/'));
  const total = fs.readdirSync(BUNDLED_MODEL).reduce((a, f) => a + fs.statSync(path.join(BUNDLED_MODEL, f)).size, 0);
  assert.ok(total < 15e6, `${total} bytes`);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'README.md', 'train-report.json'])
    assert.ok(fs.existsSync(path.join(BUNDLED_MODEL, f)), f);
  assert.ok(build.againstTransformers.shipped.top1 > 0.99 && build.againstTransformers.shipped.meanKl < 1e-3);
});

test('unicorn run with a prompt and no model: the bundled model, said on stderr; greedy text as recorded at build', () => {
  const g = build.greedy[0]!;
  const r = spawnSync(process.execPath, [BIN, 'run', g.prompt, '--temp', '0', '--repeat-penalty', '1', '-n', String(g.tokens.length), '--json'], {
    encoding: 'utf8',
    env,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /no model given: using the bundled kjv-tiny .* not an assistant/);
  const out = JSON.parse(r.stdout) as { tokens: number[]; text: string };
  assert.deepEqual(out.tokens, g.tokens);
  assert.equal(out.text, g.text);
});

test('greedy continuations of every recorded prompt are identical on this device', () => {
  const runner = openRunner(BUNDLED_MODEL, { ctx: 256 });
  try {
    for (const g of build.greedy) {
      runner.session.reset();
      const ids = runner.codec!.encode(g.prompt, true);
      assert.deepEqual(ids, g.ids);
      const out = runner.session.generate(ids, { maxTokens: g.tokens.length, sampling: GREEDY, eosIds: runner.model.spec.eosTokenIds });
      assert.deepEqual(out.tokens, g.tokens, g.prompt);
    }
  } finally {
    runner.close();
  }
});

test('chat (piped) and serve with no model use the bundled one too', async () => {
  const chat = spawnSync(process.execPath, [BIN, 'chat', '--temp', '0', '--repeat-penalty', '1', '-n', '8'], {
    input: 'In the beginning\n',
    encoding: 'utf8',
    env,
  });
  assert.equal(chat.status, 0, chat.stderr);
  assert.match(chat.stderr, /using the bundled kjv-tiny/);
  assert.ok(chat.stdout.trim().length > 0, 'a reply');
  const serve = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      serve.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /serving kjv-tiny at (http:\/\/\S+)\/v1/.exec(out);
        if (m !== null) resolve(m[1]!);
      });
      serve.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
    });
    const r = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'kjv-tiny', prompt: 'In the beginning', max_tokens: 4, temperature: 0 }),
    });
    assert.equal(r.status, 200);
    const body = (await r.json()) as { choices: { text: string }[] };
    assert.ok(body.choices[0]!.text.length > 0);
  } finally {
    serve.kill('SIGTERM');
  }
});
