/**
 * No brace crosses an #if in any shader: every branch of an #if / #elif / #else closes the braces it
 * opens, so a define selects whole statements or functions, never half of a block (which is how
 * matvec.comp's float and int8 paths once shared a loop's braces across two #if blocks).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bracesAcrossConditionals } from '../support/glsl.js';
import { ROOT } from '../support/paths.js';

const SHADERS = path.join(ROOT, 'shaders');

test('no brace crosses an #if in any shader', () => {
  const files = fs.readdirSync(SHADERS).filter((f) => f.endsWith('.comp') || f.endsWith('.glsl'));
  assert.ok(files.length > 10);
  for (const f of files) assert.deepEqual(bracesAcrossConditionals(fs.readFileSync(path.join(SHADERS, f), 'utf8')), [], f);
});

test('the check finds a brace across an #if, and passes whole branches', () => {
  assert.deepEqual(bracesAcrossConditionals('void f() {\n#if defined(A)\n  if (a) {\n#endif\n  }\n}\n'), [
    'line 4: the branch before this #endif (of the #if at line 2) leaves a brace open',
  ]);
  assert.deepEqual(bracesAcrossConditionals('void f() {\n#if defined(A)\n  for (;;) {\n#else\n  if (b) {\n#endif\n  }\n}\n'), [
    'line 4: the branch before this #else (of the #if at line 2) leaves a brace open',
    'line 6: the branch before this #endif (of the #if at line 2) leaves a brace open',
  ]);
  assert.deepEqual(bracesAcrossConditionals('void f() {\n  if (a) {\n#if defined(A)\n  }\n#endif\n}\n'), [
    'line 5: the branch before this #endif (of the #if at line 3) closes a brace opened before it',
  ]);
  assert.deepEqual(bracesAcrossConditionals('void f() {\n#if defined(A)\n  a(); // {\n#else\n  b();\n#endif\n}\n'), [], 'braces in comments do not count');
});
