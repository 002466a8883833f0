/**
 * `unicorn quantize` end to end: the real binary, then `unicorn run` and `inspect` on what it wrote;
 * outputs that would lose data refused with the source untouched; signals, /proc, damaged weights.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SafetensorsFile } from '../../src/engine/formats/safetensors.js';
import { BIN, modelFixture, scratchDir } from '../support/paths.js';

function unicorn(args: string[], timeout = 120_000) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout, killSignal: 'SIGKILL', env: { ...process.env, UNICORN_VALIDATION: '0' } });
  return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
}

/** Every file under `dir` with its contents, to show that nothing changed. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[path.relative(dir, path.join(e.parentPath, e.name))] = fs.readFileSync(path.join(e.parentPath, e.name)).toString('base64');
  }
  return out;
}

/** A copy of the llama fixture in `dir`. */
function copyModel(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(modelFixture('llama'))) fs.copyFileSync(path.join(modelFixture('llama'), f), path.join(dir, f));
  return dir;
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

test('Ctrl-C, SIGTERM or SIGHUP mid-way leave nothing under the output name, and the next run starts clean', async () => {
  const { writeSyntheticModel } = await import('../support/synthetic-model.js');
  const { spawn } = await import('node:child_process');
  const dir = scratchDir('cli-quant');
  const src = path.join(dir, 'src');
  writeSyntheticModel(src, 150e6);
  const out = path.join(dir, 'out');
  // Ctrl-C, a kill, and a closed terminal or dropped ssh session (SIGHUP) all clean up.
  for (const [signal, want] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    const child = spawn(process.execPath, [BIN, 'quantize', src, out, '--no-eval', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    // Interrupt once the first tensors are being written (the temporary directory exists).
    const deadline = Date.now() + 30_000;
    while (!fs.readdirSync(dir).some((n) => n.startsWith('.out.tmp-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    child.kill(signal);
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, want, `${signal}: ${err}`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['src'], `${signal}: no output, no temporary directory`);
  }
  // A run killed outright (no chance to clean up) leaves its temporary directory; the next run removes it.
  fs.mkdirSync(path.join(dir, '.out.tmp-999999'));
  const again = unicorn(['quantize', src, out, '--no-eval', '--workers', '2', '--scheme', 'int8']);
  assert.equal(again.code, 0, again.err);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['out', 'src']);
});

test('--force never deletes the source: an output that is, contains or lies inside the source, or a folder unicorn did not write, is refused', () => {
  const parent = scratchDir('cli-quant');
  const src = copyModel(path.join(parent, 'model'));
  fs.writeFileSync(path.join(parent, 'notes.txt'), 'beside the model');
  fs.symlinkSync(src, path.join(parent, 'link'));
  const mine = path.join(parent, 'mine');
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, 'thesis.tex'), 'years of work');
  const before = tree(parent);
  const cases: [string, RegExp][] = [
    [parent, /contains the source .* would delete the source/],
    [path.join(parent, 'link'), /is the source directory itself/],
    [src, /is the source directory itself/],
    [path.join(src, 'q8'), /is inside the source directory/],
    [path.join(parent, 'link', 'q8'), /is inside the source directory/],
    [mine, /was not written by unicorn quantize \(no \.unicorn-output\.json in it\)/],
    [path.join(parent, 'notes.txt'), /is a file, not a directory unicorn wrote/],
  ];
  for (const [out, want] of cases) {
    const r = unicorn(['quantize', src, out, '--force', '--no-eval', '--workers', '1']);
    assert.equal(r.code, 1, `${out}: exit ${r.code}\n${r.err}`);
    assert.match(r.err, want, out);
    assert.doesNotMatch(r.err, /internal error/);
    assert.deepEqual(tree(parent), before, `${out}: nothing changed`);
  }
  // What unicorn wrote, --force replaces.
  const out = path.join(parent, 'q');
  assert.equal(unicorn(['quantize', src, out, '--no-eval', '--scheme', 'int8', '--workers', '1']).code, 0);
  const again = unicorn(['quantize', src, out, '--force', '--no-eval', '--scheme', 'int4', '--group', '32', '--workers', '1']);
  assert.equal(again.code, 0, again.err);
  const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
  assert.equal(f.metadata['unicorn.scheme'], 'int4');
  f.close();
  assert.deepEqual(
    Object.fromEntries(Object.entries(tree(parent)).filter(([k]) => !k.startsWith('q/'))),
    before,
    'the source and its neighbours are as they were',
  );
});

test('an output under /proc or /sys is refused at once (no spinning mkdir); a missing parent folder is made', () => {
  for (const out of ['/proc/self/q8', '/proc/self/a/b/q8', '/sys/unicorn-q8']) {
    const t0 = Date.now();
    const r = unicorn(['quantize', modelFixture('llama'), out, '--no-eval', '--workers', '1'], 30_000);
    assert.equal(r.signal, null, `${out}: killed after ${Date.now() - t0} ms (hung)`);
    assert.equal(r.code, 1, `${out}: ${r.err}`);
    assert.match(r.err, /unicorn: (cannot write|no permission to write) \/(proc|sys)/);
    assert.doesNotMatch(r.err, /internal error/);
  }
  const dir = scratchDir('cli-quant');
  const deep = path.join(dir, 'a', 'b', 'q8');
  const ok = unicorn(['quantize', modelFixture('llama'), deep, '--no-eval', '--scheme', 'int8', '--workers', '1']);
  assert.equal(ok.code, 0, ok.err);
  assert.ok(fs.existsSync(path.join(deep, 'model.safetensors')));
});

test('NaN or an infinity in the source is refused, naming the tensor and the first bad value; nothing is written', () => {
  const dir = scratchDir('cli-quant');
  const src = copyModel(path.join(dir, 'src'));
  const file = path.join(src, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const at = (name: string) => st.tensors.find((t) => t.name === name)!.fileOffset;
  const proj = at('model.layers.1.mlp.up_proj.weight');
  const norm = at('model.layers.2.input_layernorm.weight');
  st.close();
  const pristine = fs.readFileSync(file);
  // bf16 NaN (0x7fc0) at value 70 of up_proj ([176, 64]: row 1, column 6); +Inf (0x7f80) at value 5 of a norm.
  for (const [offset, bits, want] of [
    [proj + 70 * 2, 0x7fc0, /model\.layers\.1\.mlp\.up_proj\.weight: value 70 \(row 1, column 6\) is NaN/],
    [norm + 5 * 2, 0x7f80, /model\.layers\.2\.input_layernorm\.weight: value 5 is \+Inf/],
  ] as const) {
    const bytes = Buffer.from(pristine);
    bytes.writeUInt16LE(bits, offset);
    fs.writeFileSync(file, bytes);
    for (const scheme of ['int8', 'mixed']) {
      const r = unicorn(['quantize', src, path.join(dir, 'out'), '--no-eval', '--scheme', scheme, '--workers', '2']);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, want);
      assert.match(r.err, /the source checkpoint is damaged/);
      assert.deepEqual(fs.readdirSync(dir), ['src'], 'no output, no temporary directory');
    }
  }
});

test('a source without tokenizer.json quantizes, with a warning that run and chat will need one', () => {
  const dir = scratchDir('cli-quant');
  const src = copyModel(path.join(dir, 'src'));
  fs.rmSync(path.join(src, 'tokenizer.json'));
  const r = unicorn(['quantize', src, path.join(dir, 'out'), '--no-eval', '--scheme', 'int8', '--workers', '1']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warning: .* has no tokenizer\.json.*run, chat and serve need one/);
  const full = unicorn(['quantize', modelFixture('llama'), path.join(dir, 'out2'), '--no-eval', '--scheme', 'int8', '--workers', '1']);
  assert.doesNotMatch(full.err, /warning/);
});
