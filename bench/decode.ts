/**
 * npm run bench:decode -- <model dir> [--prompt=512] [--tokens=128] [--ctx=N]: prefill and decode
 * speed of a whole model against the bandwidth roofline, with one decode step's GPU time per kernel.
 * The same measurement as `unicorn bench <model> --profile` (src/engine/bench.ts).
 */
import { benchModel, renderBench } from '../src/engine/bench.js';

const arg = (name: string, dflt: number | undefined) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? dflt : Number(a.slice(name.length + 3));
};
const dir = process.argv[2];
if (dir === undefined || dir.startsWith('--')) {
  console.error('usage: node dist/bench/decode.js <model dir> [--prompt=512] [--tokens=128] [--ctx=N]');
  process.exit(2);
}
const promptTokens = arg('prompt', 512)!;
const genTokens = arg('tokens', 128)!;
const ctx = arg('ctx', undefined);
console.log(renderBench(benchModel(dir, { promptTokens, genTokens, profile: true, ...(ctx === undefined ? {} : { ctx }) })));
