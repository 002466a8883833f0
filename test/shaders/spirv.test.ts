import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../support/paths.js';

interface Build {
  inputHash: (v: unknown) => string;
  variants: { name: string; source: string; defines: Record<string, string> }[];
}

test('every shipped .spv is up to date with its source, includes, defines and flags, one per variant of the kernel table', async () => {
  const build = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-shaders.mjs')).href + '?check-only')) as Build;
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'shaders', 'spv', 'manifest.json'), 'utf8')) as Record<string, { input: string; spv: string }>;
  assert.ok(build.variants.length >= 5);
  for (const v of build.variants) {
    const entry = manifest[v.name];
    assert.ok(entry !== undefined, `${v.name} was never built: run node scripts/build-shaders.mjs`);
    assert.equal(entry.input, build.inputHash(v), `${v.name}.spv is stale against its source: run node scripts/build-shaders.mjs`);
    const spv = fs.readFileSync(path.join(ROOT, 'shaders', 'spv', `${v.name}.spv`));
    assert.equal(createHash('sha256').update(spv).digest('hex'), entry.spv, `${v.name}.spv differs from what the build wrote`);
  }
  const names = new Set(build.variants.map((v) => v.name));
  assert.deepEqual(
    Object.keys(manifest).filter((n) => !names.has(n)),
    [],
    'manifest entries of no variant',
  );
  assert.deepEqual(
    fs.readdirSync(path.join(ROOT, 'shaders', 'spv')).filter((f) => f.endsWith('.spv') && !names.has(f.slice(0, -4))),
    [],
    '.spv files of no variant',
  );
});
