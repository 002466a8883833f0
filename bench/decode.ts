/**
 * npm run bench:decode -- <model dir> [--prompt N] [--tokens N] [--ctx N]: prefill and decode speed of
 * a whole model on the GPU, against the bandwidth roofline measured in the same run.
 *
 * Decode at batch 1 reads every weight once per token (plus the KV cache), so its ceiling is
 * copy bandwidth / bytes per token; the report gives tok/s, the GB/s that implies, and its share of
 * the copy rate. Then a GPU-timestamp profile of one decode step, per kernel (where the time goes).
 * Prompt token ids are drawn at random (speed does not depend on them); generation is greedy.
 */
import { openRunner } from '../src/engine/generate/runner.js';
import { GREEDY } from '../src/engine/generate/sampler.js';
import { Session } from '../src/engine/generate/session.js';
import type { GpuBackend } from '../src/engine/models/gpu-backend.js';
import { Device } from '../src/engine/vulkan/device.js';
import { Allocator } from '../src/engine/vulkan/memory.js';
import { copyBandwidth } from '../src/engine/vulkan/bandwidth.js';

const arg = (name: string, dflt: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? dflt : Number(a.slice(name.length + 3));
};
const dir = process.argv[2];
if (dir === undefined || dir.startsWith('--')) {
  console.error('usage: node dist/bench/decode.js <model dir> [--prompt=512] [--tokens=128] [--ctx=4096]');
  process.exit(2);
}
const promptLen = arg('prompt', 512);
const tokens = arg('tokens', 128);
// The copy baseline first, on an empty GPU (after a large model is loaded, free memory and its
// placement differ run to run).
const probe = Device.open();
const baseline = copyBandwidth(probe, new Allocator(probe), 1 << 30);
probe.destroy();
const runner = openRunner(dir, { ctx: arg('ctx', Math.max(1024, promptLen + tokens + 1)), text: false, profile: true });
const device = runner.device!;
const spec = runner.model.spec;

// Bytes a decode step reads: every projection, the output head (the embedding table when tied) and
// the norms; the embedding lookup reads one row.
const bound = runner.model.bound.tensors;
let weightBytes = 0;
for (const [name, t] of bound) weightBytes += name === 'embed_tokens.weight' ? (spec.tieWordEmbeddings ? t.byteLength : 0) : t.byteLength;

let seed = 1;
const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed; };
const prompt = Array.from({ length: promptLen }, () => 3 + (rand() % (spec.vocabSize - 3)));

// Warm-up: pipelines compiled, decode step recorded.
new Session(runner.backend).generate(prompt.slice(0, 8), { maxTokens: 4, sampling: GREEDY, eosIds: [] });
const g = new Session(runner.backend).generate(prompt, { maxTokens: tokens, sampling: GREEDY, eosIds: [] });
const t = g.timings;
const prefillTps = t.promptTokens / t.prefillSeconds;
const decodeTps = t.decodeSteps / t.decodeSeconds;
const roofline = (baseline.shader * 1e9) / weightBytes;

console.log(`${dir}: ${spec.architecture}, ${(weightBytes / 1e9).toFixed(2)} GB read per decode token, on ${device.info.name}`);
console.log(`copy by compute shader ${baseline.shader.toFixed(0)} GB/s -> roofline ${roofline.toFixed(0)} tok/s`);
console.log(`prefill ${promptLen} tokens: ${(t.prefillSeconds * 1000).toFixed(0)} ms, ${prefillTps.toFixed(0)} tok/s (time to first token ${(t.timeToFirstToken * 1000).toFixed(0)} ms)`);
console.log(`decode ${t.decodeSteps} tokens after it: ${decodeTps.toFixed(1)} tok/s = ${((decodeTps * weightBytes) / 1e9).toFixed(0)} GB/s of weights, ${((100 * decodeTps) / roofline).toFixed(0)}% of the roofline`);

// One decode step's profile, per kernel (greedy: argmax on the GPU).
const backend = runner.backend as GpuBackend;
const steps = backend.lastProfile();
// Sampling as `unicorn run` does by default (top-k 40 on the GPU, then top-p / min-p on the host).
const sampled = new Session(runner.backend).generate(prompt, { maxTokens: tokens, sampling: { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1, repeatLastN: 64, seed: 1 }, eosIds: [] }).timings;
console.log(`decode with sampling (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05): ${(sampled.decodeSteps / sampled.decodeSeconds).toFixed(1)} tok/s`);
const byKernel = new Map<string, { us: number; n: number }>();
for (const s of steps) {
  const e = byKernel.get(s.label) ?? { us: 0, n: 0 };
  e.us += s.us;
  e.n++;
  byKernel.set(s.label, e);
}
const total = steps.reduce((a, s) => a + s.us, 0);
console.log(`\none decode step on the GPU: ${steps.length} dispatches, ${(total / 1000).toFixed(2)} ms (host-measured ${(1000 / decodeTps).toFixed(2)} ms)`);
console.log('kernel                     count   total µs   share   µs each');
for (const [label, e] of [...byKernel].sort((a, b) => b[1].us - a[1].us)) {
  console.log(`${label.padEnd(25)} ${String(e.n).padStart(6)} ${e.us.toFixed(0).padStart(10)} ${((100 * e.us) / total).toFixed(1).padStart(6)}% ${(e.us / e.n).toFixed(1).padStart(9)}`);
}
runner.close();
