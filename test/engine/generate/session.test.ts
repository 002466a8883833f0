/** Session stop strings on the CPU reference path (the tiny llama fixture): an empty one is no stop string. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openRunner } from '../../../src/engine/generate/runner.js';
import { GREEDY } from '../../../src/engine/generate/sampler.js';
import { modelFixture } from '../../support/paths.js';

test('an empty stop string (an API client can send one) does not stop generation after the first token', () => {
  const runner = openRunner(modelFixture('llama'), { device: 'cpu', ctx: 64 });
  try {
    const ids = runner.codec!.encode('Once upon a time', true);
    const o = { maxTokens: 6, sampling: GREEDY, eosIds: [] as number[] };
    const plain = runner.session.generate(ids, o);
    const empty = runner.session.generate(ids, { ...o, stop: [''] });
    assert.equal(empty.finish, 'length');
    assert.deepEqual(empty.tokens, plain.tokens);
  } finally {
    runner.close();
  }
});
