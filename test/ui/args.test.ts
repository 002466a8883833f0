/**
 * The shared `--kv-cache <f16|q8>` option (src/ui/args.ts): one definition on every command that
 * opens or plans a model (parsed, left out, refused with the allowed values), and a cache type the
 * model's heads cannot take refused before the GPU is opened or any weight loads.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { buildProgram } from '../../src/cli.js';
import { KV_CACHE_TYPES } from '../../src/engine/models/memory.js';
import { kvCacheOption } from '../../src/ui/args.js';
import { BIN, modelFixture } from '../support/paths.js';

const env = { ...process.env, UNICORN_VALIDATION: '0' };
const unicorn = (args: string[], input = '') => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, input, timeout: 120_000, killSignal: 'SIGKILL' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

/** Every command that takes --kv-cache ('__resident': what `load --keep` starts). */
const COMMANDS = ['run', 'chat', 'serve', 'bench', 'load', 'doctor', 'inspect', '__resident'] as const;

/** A throwaway command with the option, parsing `args` (commander throws instead of exiting). */
function parse(args: string[]): unknown {
  const c = new Command('t')
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .addOption(kvCacheOption());
  c.parse(args, { from: 'user' });
  return c.opts()['kvCache'];
}

describe('--kv-cache', () => {
  test('parses f16 and q8; left out it is undefined (f16 where a cache is made); anything else is refused naming the allowed values', () => {
    assert.equal(parse(['--kv-cache', 'q8']), 'q8');
    assert.equal(parse(['--kv-cache', 'f16']), 'f16');
    assert.equal(parse([]), undefined);
    for (const bad of ['q4', 'Q8', 'f32', '']) {
      assert.throws(
        () => parse(['--kv-cache', bad]),
        (e: unknown) => e instanceof CommanderError && e.code === 'commander.invalidArgument' && /Allowed choices are f16, q8\./.test(e.message),
        bad,
      );
    }
  });

  test('every command that opens or plans a model has the one definition, with the engine list of cache types', () => {
    const program = buildProgram();
    const one = kvCacheOption();
    for (const name of COMMANDS) {
      const cmd = program.commands.find((c) => c.name() === name);
      assert.ok(cmd !== undefined, name);
      const opt = cmd.options.find((o) => o.long === '--kv-cache');
      assert.ok(opt !== undefined, `${name} has --kv-cache`);
      assert.deepEqual(opt.argChoices, [...KV_CACHE_TYPES], name);
      assert.equal(opt.flags, one.flags, name);
      assert.equal(opt.defaultValue, undefined, `${name}: no commander default (left out = f16, told apart from asked)`);
      assert.match(opt.description, /f16 \(default\), or q8 \(int8 in blocks of 32 with an f32 scale: 0\.56x the memory, some accuracy lost\)$/, name);
    }
  });

  test('the binary refuses a bad value on every public command with one line naming f16 and q8, before anything is read', () => {
    for (const name of COMMANDS.filter((n) => n !== '__resident')) {
      const r = unicorn([name, ...(name === 'doctor' ? [] : [modelFixture('llama')]), '--kv-cache', 'q4']);
      assert.equal(r.code, 1, `${name}: ${r.err}`);
      assert.equal(r.err.split('\n')[0], "error: option '--kv-cache <type>' argument 'q4' is invalid. Allowed choices are f16, q8.", name);
      assert.doesNotMatch(r.err, /opening|loading|\n\s+at /, name);
    }
  });

  test('q8 on a model whose head_dim is not a multiple of 32 is refused before the GPU is opened (a GPU that does not exist is never reached)', () => {
    const llama = modelFixture('llama'); // head_dim 16
    const gpu = ['--gpu', 'no-such-gpu'];
    // Without --kv-cache q8 these reach the GPU and fail there: what the refusal must come before.
    assert.match(unicorn(['run', llama, 'hi', '-n', '2', ...gpu]).err, /no Vulkan device matches "no-such-gpu"/);
    const runs: [string, string[], string?][] = [
      ['run', ['run', llama, 'hi', '-n', '2']],
      ['chat', ['chat', llama, '--plain'], 'hi\n'],
      ['serve', ['serve', llama, '--port', '0']],
      ['bench', ['bench', llama, '-p', '4', '-n', '2']],
      ['load', ['load', llama]],
      ['inspect --plan', ['inspect', '--plan', llama]],
      ['doctor', ['doctor', '--model', llama]],
    ];
    for (const [what, args, input] of runs) {
      const r = unicorn([...args, '--kv-cache', 'q8', ...gpu], input);
      assert.equal(r.code, 1, `${what}: ${r.err}`);
      assert.match(r.err, /unicorn: --kv-cache q8: this model's head_dim 16 is not a multiple of 32/, what);
      assert.match(r.err, /fix: use --kv-cache f16/, what);
      assert.doesNotMatch(r.err, /Vulkan device|loading weights|internal error/, what);
    }
  });

  test('run --kv-cache q8 generates on a model whose heads take it and says so; f16 is the default and not mentioned', () => {
    const model = modelFixture('gemma3-text'); // head_dim 32
    const q8 = unicorn(['run', model, 'hi', '-n', '4', '--temp', '0', '--kv-cache', 'q8']);
    assert.equal(q8.code, 0, q8.err);
    assert.match(q8.err, /· context \d+ · KV cache q8\n/);
    assert.match(q8.err, /\b[1-4] tokens at /, 'it generated');
    const f16 = unicorn(['run', model, 'hi', '-n', '4', '--temp', '0']);
    assert.equal(f16.code, 0, f16.err);
    assert.match(f16.err, /· context \d+\n/);
    assert.doesNotMatch(f16.err, /KV cache/);
  });
});
