/** `unicorn quantize` end to end: the real binary, then `unicorn run` and `inspect` on what it wrote. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BIN, modelFixture, scratchDir } from '../support/paths.js';

function unicorn(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, UNICORN_VALIDATION: '0' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('quantize prints sizes and quality; the output runs, inspects and refuses to be overwritten', () => {
  const out = path.join(scratchDir('cli-quant'), 'llama-mixed');
  const q = unicorn(['quantize', modelFixture('llama'), out, '--scheme', 'mixed', '--group', '32', '--workers', '2', '--eval']);
  assert.equal(q.code, 0, q.err);
  assert.match(q.out, /size +[\d.]+ KB -> [\d.]+ KB \([\d.]+x smaller\), 1 shard/);
  assert.match(q.out, /quality +mean KL [\d.e+-]+ · max KL [\d.e+-]+ · top-1 agreement [\d.]+% over \d+ positions/);
  const run = unicorn(['run', out, 'The history of the', '-n', '6', '--temp', '0', '--json']);
  assert.equal(run.code, 0, run.err);
  assert.equal(JSON.parse(run.out).tokens.length, 6);
  const ins = unicorn(['inspect', out, '--filter', 'mlp.up_proj']);
  assert.match(ins.out, /U8 q4\/32 /);
  assert.match(ins.out, /unicorn\.scheme=mixed/);
  const again = unicorn(['quantize', modelFixture('llama'), out, '--no-eval']);
  assert.equal(again.code, 1);
  assert.match(again.err, /already exists[\s\S]*--force/);
  const requant = unicorn(['quantize', out, `${out}-2`, '--no-eval']);
  assert.equal(requant.code, 1);
  assert.match(requant.err, /already quantized/);
  assert.ok(!fs.existsSync(`${out}-2`));
});

test('Ctrl-C mid-way leaves nothing under the output name, and the next run starts clean', async () => {
  const { writeSyntheticModel } = await import('../support/synthetic-model.js');
  const { spawn } = await import('node:child_process');
  const dir = scratchDir('cli-quant');
  const src = path.join(dir, 'src');
  writeSyntheticModel(src, 150e6);
  const out = path.join(dir, 'out');
  const child = spawn(process.execPath, [BIN, 'quantize', src, out, '--no-eval', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  // Interrupt once the first tensors are being written (the temporary directory exists).
  const deadline = Date.now() + 30_000;
  while (!fs.readdirSync(dir).some((n) => n.startsWith('.out.tmp-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, err);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['src'], 'no output, no temporary directory');
  // A run killed outright (no chance to clean up) leaves its temporary directory; the next run removes it.
  fs.mkdirSync(path.join(dir, '.out.tmp-999999'));
  const again = unicorn(['quantize', src, out, '--no-eval', '--workers', '2', '--scheme', 'int8']);
  assert.equal(again.code, 0, again.err);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['out', 'src']);
});
