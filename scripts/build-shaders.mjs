#!/usr/bin/env node
// Compiles shaders/*.comp into shaders/spv/<variant>.spv with glslc, one SPIR-V file per variant of
// the kernel table (src/engine/kernels/table.ts: each kernel's source and the defines of each
// combination of its variant axes), and writes shaders/spv/manifest.json with a hash of each
// variant's inputs (source, the files it includes, defines, flags) and of its output. The SPIR-V
// ships in the package: users need no compiler. `--check` only verifies that nothing is stale.
// The compiler is pinned (SHADER_COMPILER in the table, part of every hash): scripts/glslc.sh finds it
// or fetches it once into .tools/ (Debian 12's own glslc is too old for cooperative matrices).
//
// The table is TypeScript; this script imports its compiled copy in dist/ (the code the runtime
// runs, so the two cannot disagree), and refuses to run on a copy older than its source: run
// `npx tsc -p tsconfig.json` first.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'shaders');

/** The compiled table, checked to be no older than the TypeScript it comes from. */
async function loadTable() {
  const modules = ['table', 'weight-formats'];
  for (const m of modules) {
    const src = path.join(root, 'src', 'engine', 'kernels', `${m}.ts`);
    const out = path.join(root, 'dist', 'src', 'engine', 'kernels', `${m}.js`);
    if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs) {
      throw new Error(`${path.relative(root, out)} is missing or older than ${path.relative(root, src)}: run \`npx tsc -p tsconfig.json\` first`);
    }
  }
  return import(pathToFileURL(path.join(root, 'dist', 'src', 'engine', 'kernels', 'table.js')).href);
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]);
const { SHADER_COMPILER, SHADER_FLAGS, shaderVariants } = await loadTable().catch((e) => {
  if (!isMain) throw e;
  console.error(`build-shaders: ${e.message}`);
  process.exit(1);
});
const flags = [...SHADER_FLAGS];
/** Every variant: { name, kernel, source, defines }. */
export const variants = shaderVariants();

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
  return createHash('sha256')
    .update(JSON.stringify({ compiler: SHADER_COMPILER, flags, defines: v.defines, source: sourceClosure(v.source) }))
    .digest('hex');
}

const check = process.argv.includes('--check');
if (isMain) main();

/** The pinned glslc (scripts/glslc.sh), checked to be that version. */
function compiler() {
  const glslc = execFileSync('bash', [path.join(root, 'scripts', 'glslc.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const version = execFileSync(glslc, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  if (!version.startsWith(SHADER_COMPILER)) throw new Error(`${glslc} is ${version}, not ${SHADER_COMPILER}`);
  return glslc;
}

function main() {
  const manifestPath = path.join(dir, 'spv', 'manifest.json');
  const manifest = fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : {};
  const next = {};
  let stale = 0;
  let glslc;
  try {
    if (!check) glslc = compiler();
  } catch (e) {
    console.error(`build-shaders: ${e.message}`);
    process.exit(1);
  }
  for (const v of variants) {
    const h = inputHash(v);
    const out = path.join(dir, 'spv', `${v.name}.spv`);
    if (check) {
      if (manifest[v.name]?.input !== h || !fs.existsSync(out)) {
        console.error(`stale: ${v.name}`);
        stale++;
      }
      continue;
    }
    const args = [...flags, ...Object.entries(v.defines).map(([k, val]) => `-D${k}=${val}`), '-o', out, path.join(dir, v.source)];
    execFileSync(glslc, args, { stdio: 'inherit' });
    next[v.name] = { input: h, spv: createHash('sha256').update(fs.readFileSync(out)).digest('hex') };
    console.log(`${v.name}.spv  ${fs.statSync(out).size} bytes`);
  }
  // SPIR-V of variants the table no longer has.
  const orphans = fs.readdirSync(path.join(dir, 'spv')).filter((f) => f.endsWith('.spv') && !variants.some((v) => `${v.name}.spv` === f));
  if (check) {
    for (const f of orphans) {
      console.error(`not in the kernel table: spv/${f}`);
      stale++;
    }
    process.exit(stale === 0 ? 0 : 1);
  }
  for (const f of orphans) {
    fs.rmSync(path.join(dir, 'spv', f));
    console.log(`${f} removed: not in the kernel table`);
  }
  fs.writeFileSync(manifestPath, `${JSON.stringify(next, null, 2)}\n`);
}
