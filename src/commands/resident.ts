/**
 * The resident model server's commands: `unicorn ps`, `unicorn stop`, and the hidden `__resident`
 * that `unicorn load --keep` starts in the background.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { UnicornError } from '../engine/errors.js';
import { openRunner } from '../engine/generate/runner.js';
import { ResidentClient, listResident } from '../engine/server/client.js';
import { runtimeDir, socketFor, type ServerInfo } from '../engine/server/protocol.js';
import { serve, socketAlive } from '../engine/server/server.js';
import { formatBytes, table } from '../ui/format.js';

const BIN = fileURLToPath(new URL('../../../bin/unicorn', import.meta.url));

/** Starts a detached server for a model and waits until it answers; returns its info. */
export async function startResident(model: string, opts: { ctx?: number; gpu?: string }, onWait?: (s: number) => void): Promise<ServerInfo> {
  const existing = await ResidentClient.connect(model);
  if (existing !== null) {
    try { return await existing.info(); } finally { existing.close(); }
  }
  const log = path.join(runtimeDir(), `${path.basename(socketFor(model), '.sock')}.log`);
  const fd = fs.openSync(log, 'w', 0o600);
  const args = [BIN, '__resident', model, ...(opts.ctx === undefined ? [] : ['--ctx', String(opts.ctx)]), ...(opts.gpu === undefined ? [] : ['--gpu', opts.gpu])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
  let exited: number | null = null;
  child.on('exit', (code) => { exited = code ?? 1; });
  child.unref();
  fs.closeSync(fd);
  const t0 = Date.now();
  const sock = socketFor(model);
  while (exited === null) {
    if (fs.existsSync(sock) && (await socketAlive(sock))) {
      const c = await ResidentClient.connect(model);
      if (c !== null) {
        try { return await c.info(); } finally { c.close(); }
      }
    }
    onWait?.((Date.now() - t0) / 1000);
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join('\n');
  throw new UnicornError(`the resident server for ${model} exited while loading (code ${exited}): ${tail}`);
}

export function residentCommand(): Command {
  return new Command('__resident')
    .argument('<model>')
    .option('--ctx <n>', '', (v) => Number(v))
    .option('--gpu <id>')
    .action(async (model: string, o: { ctx?: number; gpu?: string }) => {
      const runner = openRunner(model, { text: false, ...(o.ctx === undefined ? {} : { ctx: o.ctx }), ...(o.gpu === undefined ? {} : { gpu: o.gpu }) });
      try {
        await serve(runner, { onReady: (s) => process.stdout.write(`serving ${model} on ${s}\n`) });
      } finally {
        runner.close();
      }
      // A clean stop: the log is of no more use (a crash leaves it for `unicorn load --keep` to show).
      fs.rmSync(path.join(runtimeDir(), `${path.basename(socketFor(model), '.sock')}.log`), { force: true });
    });
}

export function psCommand(): Command {
  return new Command('ps')
    .description('list the models held by resident servers (unicorn load --keep)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const list = await listResident();
      if (o.json === true) { process.stdout.write(`${JSON.stringify(list)}\n`); return; }
      if (list.length === 0) { console.log('no resident models (unicorn load --keep <model> starts one)'); return; }
      console.log(table(['model', 'pid', 'device', 'GPU memory', 'context', 'loaded'], list.map((i) => [
        i.model, String(i.pid), i.device, i.gpuBytes === null ? '-' : formatBytes(i.gpuBytes), `${i.contextUsed} / ${i.ctx}`, i.loadedAt.replace('T', ' ').slice(0, 19),
      ])));
    });
}

export function stopCommand(): Command {
  return new Command('stop')
    .description('unload a resident model (all of them with no argument)')
    .argument('[model]', 'model directory')
    .action(async (model?: string) => {
      const targets = model !== undefined ? [model] : (await listResident()).map((i) => i.model);
      if (targets.length === 0) { console.log('no resident models'); return; }
      for (const m of targets) {
        const c = await ResidentClient.connect(m);
        if (c === null) throw new UnicornError(`no resident server holds ${m}`, { hint: '`unicorn ps` lists what is resident' });
        await c.stop();
        c.close();
        console.log(`stopped ${m}`);
      }
    });
}
