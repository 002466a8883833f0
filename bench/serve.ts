/**
 * npm run bench:serve -- <model dir> [--clients=1,4,16] [--requests=32] [--tokens=128] [--ctx=4096]:
 * the OpenAI API under load. The model is loaded in this process and served on 127.0.0.1; N clients
 * send streamed /v1/chat/completions requests (each its own prompt, so no answer rides on another's
 * cache), back to back, until `requests` are done. Per N: requests per second, latency and time to
 * first token (p50 / p95), and the generated tokens per second of all clients together as a ratio of
 * one request served alone, measured first in the same run (the queue serves one request at a time,
 * so 1.0 is the ceiling and the gap is the server's own cost).
 */
import { localBackend } from '../src/engine/api/backends.js';
import { startApi } from '../src/engine/api/http.js';
import { openRunner } from '../src/engine/generate/runner.js';

const arg = (name: string, dflt: string) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? dflt : a.slice(name.length + 3);
};
const dir = process.argv[2];
if (dir === undefined || dir.startsWith('--')) {
  console.error('usage: node dist/bench/serve.js <model dir> [--clients=1,4,16] [--requests=32] [--tokens=128] [--ctx=4096]');
  process.exit(2);
}
const clients = arg('clients', '1,4,16').split(',').map(Number);
const requests = Number(arg('requests', '32'));
const tokens = Number(arg('tokens', '128'));
const runner = openRunner(dir, { ctx: Number(arg('ctx', '4096')) });
const api = await startApi(localBackend(runner, 'bench'), { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20, maxQueue: 1024, version: 'bench' });

const TOPICS = [
  'the sea',
  'mountains',
  'a lighthouse',
  'the history of bread',
  'winter',
  'a small town',
  'rivers',
  'the moon',
  'old ships',
  'gardens',
  'trains',
  'libraries',
];

interface One {
  seconds: number;
  ttft: number;
  tokens: number;
}

/** One streamed chat request; resolves when [DONE] arrives. */
async function one(i: number): Promise<One> {
  const t0 = performance.now();
  const res = await fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: tokens,
      temperature: 0.7,
      seed: i,
      messages: [{ role: 'user', content: `Request ${i}. Write a long story about ${TOPICS[i % TOPICS.length]}, in ${3 + (i % 5)} parts.` }],
    }),
  });
  if (!res.ok || res.body === null) throw new Error(`request ${i}: HTTP ${res.status} ${await res.text()}`);
  let ttft = 0;
  let n = 0;
  let buf = '';
  const decoder = new TextDecoder();
  for await (const c of res.body) {
    buf += decoder.decode(c as Uint8Array, { stream: true });
    for (let k = buf.indexOf('\n\n'); k >= 0; k = buf.indexOf('\n\n')) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const ev = JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } };
      if (ttft === 0 && (ev.choices[0]?.delta.content ?? '') !== '') ttft = (performance.now() - t0) / 1000;
      if (ev.usage !== undefined) n = ev.usage.completion_tokens;
    }
  }
  return { seconds: (performance.now() - t0) / 1000, ttft, tokens: n };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

// Warm-up (pipelines, recorded decode step), then one request alone: the baseline.
await one(10_000);
const solo = await one(10_001);
// End to end (prompt included), as the loaded runs below are measured.
const soloTps = solo.tokens / solo.seconds;
console.log(`${dir} on ${runner.device?.info.name ?? 'cpu'}: ${tokens} tokens per request, streamed`);
console.log(
  `one request alone: ${solo.tokens} tokens in ${solo.seconds.toFixed(2)} s, time to first token ${(solo.ttft * 1000).toFixed(0)} ms, ${soloTps.toFixed(1)} tok/s end to end (${(solo.tokens / (solo.seconds - solo.ttft)).toFixed(1)} after the first token)`,
);
console.log('');
console.log('clients  requests  req/s   latency p50 / p95   TTFT p50 / p95      tok/s (all)  vs alone');
let next = 0;
for (const n of clients) {
  const results: One[] = [];
  next = n * 1000;
  const end = next + requests;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < end) results.push(await one(next++));
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const lat = results.map((r) => r.seconds);
  const ttft = results.map((r) => r.ttft);
  const tps = results.reduce((a, r) => a + r.tokens, 0) / wall;
  console.log(
    `${String(n).padStart(7)}  ${String(results.length).padStart(8)}  ${(results.length / wall).toFixed(2).padStart(5)}   ` +
      `${pct(lat, 50).toFixed(2).padStart(6)} / ${pct(lat, 95).toFixed(2).padEnd(6)} s    ` +
      `${(pct(ttft, 50) * 1000).toFixed(0).padStart(6)} / ${(pct(ttft, 95) * 1000).toFixed(0).padEnd(6)} ms   ${tps.toFixed(1).padStart(8)}     ${(tps / soloTps).toFixed(2)}`,
  );
}
await api.close();
runner.close();
