#!/usr/bin/env node
// Compiles shaders/*.comp into shaders/spv/<variant>.spv with glslc, one SPIR-V file per entry of
// shaders/variants.json (source + defines), and writes shaders/spv/manifest.json with a hash of each
// variant's inputs (source, the files it includes, defines, flags) and of its output. The SPIR-V
// ships in the package: users need no compiler. `--check` only verifies that nothing is stale.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'shaders');
const table = JSON.parse(fs.readFileSync(path.join(dir, 'variants.json'), 'utf8'));

/** The source and everything it includes, in order, for hashing. */
export function sourceClosure(file, seen = new Set()) {
  if (seen.has(file)) return '';
  seen.add(file);
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  let out = `//${file}\n${text}`;
  for (const m of text.matchAll(/^#include "([^"]+)"/gm)) out += sourceClosure(m[1], seen);
  return out;
}

export function inputHash(v) {
  return createHash('sha256').update(JSON.stringify({ flags: table.flags, defines: v.defines, source: sourceClosure(v.source) })).digest('hex');
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]);
const check = process.argv.includes('--check');
if (isMain) main();

function main() {
const manifestPath = path.join(dir, 'spv', 'manifest.json');
const manifest = fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : {};
const next = {};
let stale = 0;
for (const v of table.variants) {
  const h = inputHash(v);
  const out = path.join(dir, 'spv', `${v.name}.spv`);
  if (check) {
    if (manifest[v.name]?.input !== h || !fs.existsSync(out)) { console.error(`stale: ${v.name}`); stale++; }
    continue;
  }
  const args = [...table.flags, ...Object.entries(v.defines).map(([k, val]) => `-D${k}=${val}`), '-o', out, path.join(dir, v.source)];
  execFileSync('glslc', args, { stdio: 'inherit' });
  next[v.name] = { input: h, spv: createHash('sha256').update(fs.readFileSync(out)).digest('hex') };
  console.log(`${v.name}.spv  ${fs.statSync(out).size} bytes`);
}
if (check) process.exit(stale === 0 ? 0 : 1);
fs.writeFileSync(manifestPath, `${JSON.stringify(next, null, 2)}\n`);
}
