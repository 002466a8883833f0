/** `unicorn doctor`: diagnose the machine for running models on Vulkan (and the AMD NPU), each failure with its fix. */
import * as fs from 'node:fs';
import { Command } from 'commander';
import ora from 'ora';
import { type Check, type ModelNeeds, runChecks } from '../engine/doctor/checks.js';
import { type Snapshot, collect } from '../engine/doctor/probe.js';
import { probeVulkan } from '../engine/doctor/vulkan-probe.js';
import { UnicornError } from '../engine/errors.js';
import { commitTemp, tempPathFor } from '../engine/formats/atomic.js';
import { DEFAULT_CTX } from '../engine/generate/runner.js';
import { kvCacheBytes } from '../engine/models/memory.js';
import { openModel } from '../engine/models/model-dir.js';

const MARK: Record<Check['status'], string> = { PASS: 'PASS', WARN: 'WARN', FAIL: 'FAIL', INFO: 'info' };

export function renderChecks(checks: readonly Check[]): string {
  const out: string[] = [];
  let section = '';
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const c of checks) {
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
    .option('--ctx <n>', 'context for --model', (v) => Number(v), DEFAULT_CTX)
    .option('--gpu <index|name>', 'which GPU the self-test uses')
    .option('--no-self-test', 'skip the GPU self-test dispatch')
    .option('--snapshot <file>', 'also write what was probed, as JSON (attach it to a bug report)')
    .option('--from <file>', 'check a snapshot written by --snapshot instead of this machine')
    .option('--json', 'print the checks as JSON')
    .action((o: { model?: string; ctx: number; gpu?: string; selfTest: boolean; snapshot?: string; from?: string; json?: boolean }) => {
      let snap: Snapshot;
      if (o.from !== undefined) {
        try {
          snap = JSON.parse(fs.readFileSync(o.from, 'utf8')) as Snapshot;
        } catch (e) {
          throw new UnicornError(`${o.from}: not a snapshot (${e instanceof Error ? e.message : String(e)})`);
        }
        if (snap.schema !== 1) throw new UnicornError(`${o.from}: snapshot schema ${String(snap.schema)}, this unicorn reads 1`);
      } else {
        const spinner = ora({ text: 'probing the system, Vulkan and the NPU', stream: process.stderr, isSilent: process.stderr.isTTY !== true || o.json === true }).start();
        snap = collect(() => probeVulkan({ selfTest: o.selfTest, ...(o.gpu === undefined ? {} : { gpu: o.gpu }) }));
        spinner.stop();
      }
      if (o.snapshot !== undefined) {
        const tmp = tempPathFor(o.snapshot);
        fs.writeFileSync(tmp, `${JSON.stringify(snap, null, 1)}\n`);
        commitTemp(tmp, o.snapshot);
      }
      const checks = runChecks(snap, o.model === undefined ? undefined : modelNeeds(o.model, o.ctx));
      if (o.json === true) process.stdout.write(`${JSON.stringify({ takenAt: snap.takenAt, checks }, null, 1)}\n`);
      else console.log(renderChecks(checks));
      if (checks.some((c) => c.status === 'FAIL')) process.exitCode = 1;
    });
}
