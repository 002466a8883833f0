/**
 * `unicorn run` end to end, the real binary on the fixture models with their tiny tokenizers: text and
 * chat prompts continue exactly as transformers continued them (test/fixtures/reference/*.text.json),
 * on the GPU and on the CPU reference path; bad input gives one clear error and no partial output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { BIN, FIXTURES, MODEL_FIXTURES, modelFixture, scratchDir } from '../support/paths.js';

function unicorn(args: string[], input?: string, timeout = 120_000) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input,
    timeout,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 26,
    env: { ...process.env, UNICORN_VALIDATION: '0' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
}

interface TextReference {
  eos: number[];
  text: { prompt: string; ids: number[]; greedy: number[]; greedy_text: string };
  chat: { messages: { role: string; content: string }[]; ids: number[]; greedy: number[]; greedy_text: string };
}
const textRef = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', `${name}.text.json`), 'utf8')) as TextReference;
/** transformers' continuation up to (not including) an eos token. */
const untilEos = (r: TextReference, ids: number[]) => {
  const i = ids.findIndex((t) => r.eos.includes(t));
  return i < 0 ? ids : ids.slice(0, i);
};

describe('unicorn run', () => {
  for (const name of MODEL_FIXTURES) {
    test(`${name}: a text prompt and a chat prompt continue as transformers continued them`, () => {
      const ref = textRef(name);
      const text = unicorn(['run', modelFixture(name), ref.text.prompt, '-n', String(ref.text.greedy.length), '--temp', '0', '--json']);
      assert.equal(text.code, 0, text.err);
      const j = JSON.parse(text.out);
      assert.equal(j.promptTokens, ref.text.ids.length);
      assert.deepEqual(j.tokens, untilEos(ref, ref.text.greedy));
      assert.equal(j.text, ref.text.greedy_text);
      const chat = unicorn(['run', modelFixture(name), ref.chat.messages[0]!.content, '--chat', '-n', String(ref.chat.greedy.length), '--temp', '0', '--json']);
      assert.equal(chat.code, 0, chat.err);
      const c = JSON.parse(chat.out);
      assert.equal(c.promptTokens, ref.chat.ids.length);
      assert.deepEqual(c.tokens, untilEos(ref, ref.chat.greedy));
    });
  }

  test('streams to stdout, timings to stderr; --device cpu gives the same text', () => {
    const ref = textRef('llama');
    const gpu = unicorn(['run', modelFixture('llama'), ref.text.prompt, '-n', '8', '--temp', '0']);
    assert.equal(gpu.code, 0, gpu.err);
    const json = JSON.parse(unicorn(['run', modelFixture('llama'), ref.text.prompt, '-n', '8', '--temp', '0', '--json']).out) as { text: string };
    assert.equal(gpu.out, json.text.endsWith('\n') ? json.text : `${json.text}\n`);
    assert.match(gpu.err, /time to first token [\d.]+ ms · prefill [\d.]+ tok\/s · 8 tokens at [\d.]+ tok\/s · --max-tokens 8/);
    const cpu = unicorn(['run', modelFixture('llama'), ref.text.prompt, '-n', '8', '--temp', '0', '--device', 'cpu']);
    assert.equal(cpu.code, 0, cpu.err);
    assert.equal(cpu.out, gpu.out);
    assert.match(cpu.err, /CPU \(TypeScript reference\)/);
  });

  test('same seed, same text; the prompt may come from stdin', () => {
    const args = (seed: number, topK: number) => [
      'run',
      modelFixture('llama'),
      '-',
      '-n',
      '12',
      '--temp',
      '2',
      '--top-k',
      String(topK),
      '--seed',
      String(seed),
      '--json',
    ];
    for (const topK of [100, 0]) {
      // the GPU's top-k, and the full logits
      const a = JSON.parse(unicorn(args(11, topK), 'Once upon a time').out);
      const b = JSON.parse(unicorn(args(11, topK), 'Once upon a time').out);
      assert.deepEqual(a.tokens, b.tokens);
      assert.equal(a.seed, 11);
      const c = JSON.parse(unicorn(args(12, topK), 'Once upon a time').out);
      assert.notDeepEqual(c.tokens, a.tokens);
    }
  });

  test('a stop string ends the text before it', () => {
    const ref = textRef('llama');
    const full = JSON.parse(unicorn(['run', modelFixture('llama'), ref.text.prompt, '-n', '16', '--temp', '0', '--json']).out).text as string;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    assert.ok(stop.length === 2 && full.indexOf(stop) > 0, `stop string from ${JSON.stringify(full)}`);
    const cut = JSON.parse(unicorn(['run', modelFixture('llama'), ref.text.prompt, '-n', '16', '--temp', '0', '--stop', stop, '--json']).out);
    assert.equal(cut.finish, 'stop');
    assert.equal(cut.text, full.slice(0, full.indexOf(stop)));
  });

  test('bad input: one clear error, exit code 1, nothing on stdout', () => {
    const ref = textRef('gemma3-text');
    const cases: [string[], RegExp][] = [
      [['run', path.join(scratchDir('run'), 'nope'), 'hi'], /no such file or directory/],
      [
        ['run', modelFixture('gemma3-text'), ref.text.prompt.repeat(4), '--ctx', '8'],
        /the prompt is \d+ tokens, longer than the context of 8[\s\S]*fix: raise --ctx/,
      ],
      [['run', modelFixture('qwen2'), 'hi', '--chat', '--template-var', 'enable_thinkin=false'], /the chat template has no variable "enable_thinkin"/],
      [['run', modelFixture('qwen2'), 'hi', '--top-p', '3'], /top-p 3 must be in \(0, 1\]/],
      [['run', modelFixture('qwen2'), 'hi', '--ctx', '999999'], /takes contexts of 1 to \d+ tokens/],
    ];
    for (const [args, want] of cases) {
      const r = unicorn(args);
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}\n${r.err}`);
      assert.match(r.err, want);
      assert.equal(r.out, '', args.join(' '));
      assert.doesNotMatch(r.err, /internal error|at .*\.js:\d+/);
    }
  });

  test('a path that is no model directory says what it is: a file, a symbolic link loop, a FIFO, a file under /proc', () => {
    const dir = scratchDir('run');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    fs.symlinkSync(path.join(dir, 'loop-b'), path.join(dir, 'loop-a'));
    fs.symlinkSync(path.join(dir, 'loop-a'), path.join(dir, 'loop-b'));
    spawnSync('mkfifo', [path.join(dir, 'fifo')]);
    fs.writeFileSync(path.join(dir, 'lone.safetensors'), fs.readFileSync(path.join(modelFixture('llama'), 'model.safetensors')));
    const cases: [string, RegExp][] = [
      [path.join(dir, 'notes.txt'), /notes\.txt: is a file, not a model directory/],
      [path.join(dir, 'loop-a'), /loop-a: a symbolic link loop \(ELOOP\)/],
      [path.join(dir, 'fifo'), /fifo: is a FIFO \(named pipe\), not a model directory/],
      ['/proc/self/status', /\/proc\/self\/status: is a file, not a model directory/],
      [path.join(dir, 'lone.safetensors'), /lone\.safetensors: a \.safetensors file with no config\.json beside it/],
    ];
    for (const [model, want] of cases) {
      const r = unicorn(['run', model, 'hi', '-n', '2'], undefined, 30_000);
      assert.equal(r.code, 1, `${model}: exit ${r.code} ${r.signal ?? ''}\n${r.err}`);
      assert.match(r.err, want);
      assert.doesNotMatch(r.err, /internal error|cannot be read|no such file/);
      assert.equal(r.out, '');
    }
  });

  test('bad flags are refused before the model loads: --temp -1, --top-p 2, an empty --stop', () => {
    for (const [args, want] of [
      [['--temp', '-1'], /temperature -1 must be 0 or more/],
      [['--top-p', '2'], /top-p 2 must be in \(0, 1\]/],
      [['--stop', ''], /--stop '': an empty stop string would stop at once/],
    ] as const) {
      for (const command of args[0] === '--stop' ? ['run'] : ['run', 'chat']) {
        const r = unicorn([command, modelFixture('llama'), ...(command === 'run' ? ['hi'] : []), ...args], 'hi\n');
        assert.equal(r.code, 1, `${command} ${args.join(' ')}: ${r.err}`);
        assert.match(r.err, want);
        assert.doesNotMatch(r.err, /opening|loading|internal error/, `${command} ${args.join(' ')}: refused before loading`);
      }
    }
  });

  test('`run -` reads the prompt from stdin with the bundled model, as the README says', () => {
    const r = unicorn(['run', '-', '-n', '3', '--temp', '0', '--json'], 'In the beginning');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /using the bundled kjv-tiny/);
    assert.ok(JSON.parse(r.out).promptTokens > 1);
  });

  test('a 40 MB prompt on stdin is refused by its length at once, before it is tokenized (and before the weights load)', () => {
    const t0 = Date.now();
    const r = unicorn(['run', modelFixture('llama'), '-', '-n', '2'], 'In the beginning God created the heaven and the earth. '.repeat(730_000), 60_000);
    assert.equal(r.signal, null, `killed after ${Date.now() - t0} ms`);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /unicorn: the prompt is at least \d+ tokens \(40150000 characters\), longer than the context of 512/);
    assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    assert.doesNotMatch(r.err, /KB on /, 'refused before the weights were loaded');
    assert.equal(r.out, '');
  });

  test('a model directory with a missing shard or a wrong-shaped tensor is refused before anything runs', () => {
    const dir = scratchDir('run');
    for (const f of fs.readdirSync(modelFixture('llama'))) fs.copyFileSync(path.join(modelFixture('llama'), f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size * 2 }));
    const shape = unicorn(['run', dir, 'hi']);
    assert.equal(shape.code, 1);
    assert.match(shape.err, /has shape \[\d+, \d+\], but the config needs/);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    fs.writeFileSync(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors' } }),
    );
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model-00001-of-00002.safetensors'));
    const shard = unicorn(['run', dir, 'hi']);
    assert.equal(shard.code, 1);
    assert.match(shard.err, /model-00002-of-00002\.safetensors/);
    assert.equal(shard.out, '');
  });
});
