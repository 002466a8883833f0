// llama.cpp (node-llama-cpp, ../shared/peer) decode after a prompt with the KV cache in a given type,
// like `llama-bench -ctk <type> -ctv <type>`: the peer's nlc_bench.mjs with the cache type as a 5th
// argument (F16 or Q8_0; node-llama-cpp's experimentalKvCacheKeyType / ValueType). Prints the context's
// cache types as llama.cpp reports them back, then {pp_tok_s, tg_tok_s} twice after a warm-up.
//   node nlc-bench-kv.mjs <gguf> vulkan <gen tokens> <prompt tokens> <F16|Q8_0>
import {getLlama} from 'node-llama-cpp';
const [modelPath, gpu = 'vulkan', ntg = '64', npp = '512', kv = 'F16'] = process.argv.slice(2);
const llama = await getLlama({gpu, build: 'never', logLevel: 'warn'});
const model = await llama.loadModel({modelPath, gpuLayers: 'max'});
const ctx = await model.createContext({
  contextSize: Math.max(2048, Number(npp) + Number(ntg) + 64),
  batchSize: 512,
  experimentalKvCacheKeyType: kv,
  experimentalKvCacheValueType: kv,
});
console.log('kv cache', kv);
const seq = ctx.getSequence();
const toks = Array.from({length: Number(npp)}, (_, i) => 300 + (i * 7) % 200);
async function once() {
  await seq.clearHistory();
  let t = performance.now();
  const it = seq.evaluate(toks, {temperature: 0});
  await it.next();
  const ppMs = performance.now() - t;
  let n = 0;
  t = performance.now();
  while (n < Number(ntg)) { await it.next(); n++; }
  const tgMs = performance.now() - t;
  await it.return?.();
  return {pp_tok_s: Number(npp) / (ppMs / 1000), tg_tok_s: n / (tgMs / 1000)};
}
await once();
for (let i = 0; i < 2; i++) console.log(JSON.stringify(await once()));
await ctx.dispose();
await model.dispose();
