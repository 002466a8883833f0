/** `unicorn doctor`: diagnose the machine for running models on Vulkan (and the AMD NPU), each failure with its fix. */
import { spinner as startSpinner } from '../ui/spinner.js';
import { Command } from 'commander';
import { type Check, type ModelNeeds, runChecks } from '../engine/doctor/checks.js';
import { type Snapshot, collect } from '../engine/doctor/probe.js';
import { readSnapshot } from '../engine/doctor/snapshot.js';
import { probeVulkan } from '../engine/doctor/vulkan-probe.js';
import { writeFileAtomic } from '../engine/formats/atomic.js';

import { DEFAULT_CTX } from '../engine/generate/runner.js';
import { escapeControl } from '../engine/text/escape.js';
import { kvCacheOption, positive } from '../ui/args.js';
import { jsonForTerminal } from '../ui/format.js';
import { type KvCacheType, checkKvCache, kvCacheBytes, kvCacheRefusal } from '../engine/models/memory.js';
import { openModel } from '../engine/models/model-dir.js';

const MARK: Record<Check['status'], string> = { PASS: 'PASS', WARN: 'WARN', FAIL: 'FAIL', INFO: 'info' };

/**
 * The checks as a table. Names, evidence and fixes quote the snapshot (device names, file contents,
 * command outputs: from this machine or from a file someone sent), so every one goes through
 * escapeControl: an escape sequence in a snapshot cannot clear the screen or retitle the terminal.
 */
export function renderChecks(checks: readonly Check[]): string {
  const out: string[] = [];
  let section = '';
  const safe = checks.map((c) => ({
    ...c,
    name: escapeControl(c.name, 200),
    evidence: escapeControl(c.evidence, 2000),
    fix: c.fix === undefined ? undefined : escapeControl(c.fix, 2000),
  }));
  const width = Math.max(...safe.map((c) => c.name.length));
  for (const c of safe) {
    if (c.section !== section) {
      section = c.section;
      out.push('', section.toUpperCase());
    }
    out.push(`  ${MARK[c.status]}  ${c.name.padEnd(width)}  ${c.evidence}`);
    if (c.fix !== undefined) out.push(`        ${' '.repeat(width)}  fix: ${c.fix}`);
  }
  const n = (s: Check['status']) => checks.filter((c) => c.status === s).length;
  out.push('', `${n('PASS')} passed, ${n('WARN')} warnings, ${n('FAIL')} failed`);
  return out.join('\n').replace(/^\n/, '');
}

/**
 * What a model needs at a context (capped at its maximum) with a KV cache of type `kv`: its weights
 * as stored and the cache (doctor --model). A cache type the model's heads cannot take is refused
 * (checkKvCache), as run would refuse it.
 */
export function modelNeeds(dir: string, ctx: number, kv: KvCacheType = 'f16'): ModelNeeds {
  const m = openModel(dir);
  try {
    checkKvCache(m.spec, kv);
    const weights = [...m.bound.tensors.values()].reduce((a, t) => a + t.byteLength + (t.quant?.params.byteLength ?? 0), 0);
    const c = Math.min(ctx, m.spec.maxPositionEmbeddings);
    const q8 = kv === 'f16' && kvCacheRefusal(m.spec, 'q8') === undefined ? { kvCacheQ8: kvCacheBytes(m.spec, c, 'q8') } : {};
    return { dir, weights, kvCache: kvCacheBytes(m.spec, c, kv), kvType: kv, ...q8, ctx: c };
  } finally {
    m.checkpoint.close();
  }
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check this machine for running models: Vulkan, GPU memory (APU carve-out, GTT), the AMD NPU; each problem with its fix')
    .option('--model <dir>', 'also check that this model fits (weights + KV cache)')
    .option('--ctx <n>', 'context for --model', positive, DEFAULT_CTX)
    .addOption(kvCacheOption('the KV cache for --model'))
    .option('--gpu <index|name>', 'which GPU the self-test uses')
    .option('--no-self-test', 'skip the GPU self-test dispatch')
    .option('--snapshot <file>', 'also write what was probed, as JSON (attach it to a bug report)')
    .option('--from <file>', 'check a snapshot written by --snapshot instead of this machine')
    .option('--json', 'print the checks as JSON')
    .action((o: { model?: string; ctx: number; kvCache?: KvCacheType; gpu?: string; selfTest: boolean; snapshot?: string; from?: string; json?: boolean }) => {
      // The model is read (headers and config) before probing: a bad --model or --kv-cache is refused at once.
      const needs = o.model === undefined ? undefined : modelNeeds(o.model, o.ctx, o.kvCache);
      let snap: Snapshot;
      if (o.from !== undefined) {
        snap = readSnapshot(o.from);
      } else {
        const spinner = startSpinner('probing the system, Vulkan and the NPU', { json: o.json === true });
        snap = collect(() => probeVulkan({ selfTest: o.selfTest, ...(o.gpu === undefined ? {} : { gpu: o.gpu }) }));
        spinner.stop();
      }
      if (o.snapshot !== undefined) writeFileAtomic(o.snapshot, `${JSON.stringify(snap, null, 1)}\n`);
      const checks = runChecks(snap, needs);
      if (o.json === true) process.stdout.write(`${jsonForTerminal({ takenAt: snap.takenAt, checks }, 1)}\n`);
      else console.log(renderChecks(checks));
      if (checks.some((c) => c.status === 'FAIL')) process.exitCode = 1;
    });
}
