/** reportError: one line per error, control characters from outside input made visible. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnicornError } from '../../src/engine/errors.js';
import { reportError } from '../../src/ui/errors.js';

function captured(fn: () => number): { code: number; text: string } {
  const write = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: fn(), text };
  } finally {
    process.stderr.write = write;
  }
}

test('a message quoting a hostile path or file content cannot clear the screen, retitle the terminal or add a line', () => {
  const r = captured(() =>
    reportError(new UnicornError('/tmp/a\u001b[2J\u001b]0;pwned\u0007b: no such file\nunicorn: all good', { hint: 'x\u009b31my' }), false),
  );
  assert.equal(r.code, 1);
  assert.equal(r.text, 'unicorn: /tmp/a\\x1b[2J\\x1b]0;pwned\\x07b: no such file\\nunicorn: all good\n  fix: x\\x9b31my\n');
  const internal = captured(() => reportError(new Error('bad \u001b[31m'), false));
  assert.equal(internal.code, 2);
  assert.match(internal.text, /^unicorn: internal error: bad \\x1b\[31m\n/);
});
