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
import { positive } from '../ui/args.js';
import { jsonForTerminal } from '../ui/format.js';
import { kvCacheBytes } from '../engine/models/memory.js';
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

function modelNeeds(dir: string, ctx: number): ModelNeeds {
  const m = openModel(dir);
  try {
    const weights = [...m.bound.tensors.values()].reduce((a, t) => a + t.byteLength + (t.quant?.params.byteLength ?? 0), 0);
    const c = Math.min(ctx, m.spec.maxPositionEmbeddings);
    return { dir, weights, kvCache: kvCacheBytes(m.spec, c), ctx: c };
  } finally {
    m.checkpoint.close();
  }
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check this machine for running models: Vulkan, GPU memory (APU carve-out, GTT), the AMD NPU; each problem with its fix')
    .option('--model <dir>', 'also check that this model fits (weights + KV cache)')
    .option('--ctx <n>', 'context for --model', positive, DEFAULT_CTX)
    .option('--gpu <index|name>', 'which GPU the self-test uses')
    .option('--no-self-test', 'skip the GPU self-test dispatch')
    .option('--snapshot <file>', 'also write what was probed, as JSON (attach it to a bug report)')
    .option('--from <file>', 'check a snapshot written by --snapshot instead of this machine')
    .option('--json', 'print the checks as JSON')
    .action((o: { model?: string; ctx: number; gpu?: string; selfTest: boolean; snapshot?: string; from?: string; json?: boolean }) => {
      let snap: Snapshot;
      if (o.from !== undefined) {
        snap = readSnapshot(o.from);
      } else {
        const spinner = startSpinner('probing the system, Vulkan and the NPU', { json: o.json === true });
        snap = collect(() => probeVulkan({ selfTest: o.selfTest, ...(o.gpu === undefined ? {} : { gpu: o.gpu }) }));
        spinner.stop();
      }
      if (o.snapshot !== undefined) writeFileAtomic(o.snapshot, `${JSON.stringify(snap, null, 1)}\n`);
      const checks = runChecks(snap, o.model === undefined ? undefined : modelNeeds(o.model, o.ctx));
      if (o.json === true) process.stdout.write(`${jsonForTerminal({ takenAt: snap.takenAt, checks }, 1)}\n`);
      else console.log(renderChecks(checks));
      if (checks.some((c) => c.status === 'FAIL')) process.exitCode = 1;
    });
}
