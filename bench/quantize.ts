/**
 * npm run bench:quantize -- <model dir> [--workers=1,2,4] [--scheme=mixed] [--make=<GB>]
 *
 * Quantization speed in GB/s of source read, as a ratio of the plain file read rate measured in the
 * same run (the same files read sequentially in 16 MiB chunks, after one warm-up read, so both see
 * the page cache alike), for each worker count; with each run's peak resident memory (every run is
 * its own process, so the peaks are its own). `--make=<GB>` first writes a Llama-shaped bf16
 * checkpoint of about that size with pseudo-random weights into <model dir> (for machines without one).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openModel } from '../src/engine/models/model-dir.js';
import { quantizeModel } from '../src/engine/quant/quantize-model.js';
import { writeSyntheticModel } from '../test/support/synthetic-model.js';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

function readRate(files: readonly string[]): number {
  const buf = Buffer.alloc(16 << 20);
  const t0 = performance.now();
  let total = 0;
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) total += n;
    fs.closeSync(fd);
  }
  return total / 1e9 / ((performance.now() - t0) / 1000);
}

// Child mode: one quantization, reports seconds and peak RSS as JSON.
if (process.argv[2] === '--child') {
  const [src, out, scheme, workers] = process.argv.slice(3) as [string, string, 'int8' | 'int4' | 'mixed', string];
  const r = await quantizeModel(src, out, { scheme, group: 64, workers: Number(workers) });
  fs.rmSync(out, { recursive: true, force: true });
  process.stdout.write(
    JSON.stringify({ seconds: r.seconds, sourceBytes: r.sourceBytes, outputBytes: r.outputBytes, maxRssKb: process.resourceUsage().maxRSS }),
  );
  process.exit(0);
}

const dir = process.argv[2];
if (dir === undefined || dir.startsWith('--')) {
  console.error('usage: node dist/bench/quantize.js <model dir> [--workers=1,2,4] [--scheme=mixed] [--make=<GB>]');
  process.exit(2);
}
const make = arg('make');
if (make !== undefined && !fs.existsSync(path.join(dir, 'config.json')))
  writeSyntheticModel(dir, Number(make) * 1e9, { hidden: 2048, intermediate: 5632, vocab: 32000, heads: 16, headDim: 128, maxPositions: 4096, tied: false });
const scheme = arg('scheme') ?? 'mixed';
const cores = os.availableParallelism();
const counts = (arg('workers') ?? [1, 2, 4, 8, 16].filter((n) => n <= cores).join(',')).split(',').map(Number);
const model = openModel(dir);
const files = model.checkpoint.files.map((f) => f.path);
const bytes = model.checkpoint.files.reduce((a, f) => a + f.size, 0);
model.checkpoint.close();
readRate(files); // warm-up
const read = readRate(files);
console.log(
  `${dir}: ${(bytes / 1e9).toFixed(2)} GB of safetensors, scheme ${scheme}, ${cores} cores; plain file read ${read.toFixed(2)} GB/s (page cache warm)`,
);
console.log('workers   seconds   GB/s of source   of read rate   peak RSS');
const self = fileURLToPath(import.meta.url);
for (const n of counts) {
  const out = path.join(os.tmpdir(), `unicorn-bench-quant-${process.pid}`);
  const r = spawnSync(process.execPath, [self, '--child', dir, out, scheme, String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  const j = JSON.parse(r.stdout) as { seconds: number; sourceBytes: number; outputBytes: number; maxRssKb: number };
  const gbs = j.sourceBytes / 1e9 / j.seconds;
  console.log(
    `${String(n).padStart(7)} ${j.seconds.toFixed(1).padStart(9)} ${gbs.toFixed(2).padStart(16)} ${`${((100 * gbs) / read).toFixed(0)}%`.padStart(14)} ${`${(j.maxRssKb / 1024 / 1024).toFixed(2)} GB`.padStart(10)}`,
  );
}
