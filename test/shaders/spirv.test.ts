import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../support/paths.js';

test('every shipped .spv is up to date with its source, includes, defines and flags', async () => {
  const build = await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-shaders.mjs')).href + '?check-only') as { inputHash: (v: unknown) => string };
  const table = JSON.parse(fs.readFileSync(path.join(ROOT, 'shaders', 'variants.json'), 'utf8')) as { variants: { name: string }[] };
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'shaders', 'spv', 'manifest.json'), 'utf8')) as Record<string, { input: string; spv: string }>;
  assert.ok(table.variants.length >= 5);
  for (const v of table.variants) {
    const entry = manifest[v.name];
    assert.ok(entry !== undefined, `${v.name} was never built: run node scripts/build-shaders.mjs`);
    assert.equal(entry.input, build.inputHash(v), `${v.name}.spv is stale against its source: run node scripts/build-shaders.mjs`);
    const spv = fs.readFileSync(path.join(ROOT, 'shaders', 'spv', `${v.name}.spv`));
    assert.equal(createHash('sha256').update(spv).digest('hex'), entry.spv, `${v.name}.spv differs from what the build wrote`);
  }
});
