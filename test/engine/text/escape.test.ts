import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeControl } from '../../../src/engine/text/escape.js';

test('control characters from outside input become visible escapes; other text is kept', () => {
  assert.equal(escapeControl('\u001b[2J\u001b]0;pwned\u0007title'), '\\x1b[2J\\x1b]0;pwned\\x07title');
  assert.equal(escapeControl('line\nforged 200 OK\r'), 'line\\nforged 200 OK\\r');
  assert.equal(escapeControl('\u009b31m \u007f \u2028'), '\\x9b31m \\x7f \\u2028');
  assert.equal(escapeControl('tab\tok · ünïcødé 日本 🦄'), 'tab\tok · ünïcødé 日本 🦄');
  assert.equal(escapeControl('abcdef', 3), 'abc…');
});
