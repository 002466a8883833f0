/**
 * The resident model server's commands: `unicorn ps`, `unicorn stop`, and the hidden `__resident`
 * that `unicorn load --keep` starts in the background.
 *
 * Starting one: `load --keep` makes a log file of its own (O_EXCL, a fresh name) and starts
 * `__resident` with its output there. The server first claims the model (its lock, see
 * engine/server/lock.ts): where another process has it, it exits with BUSY before loading anything,
 * and `load --keep` waits for that server instead; where it gets it, it renames the log to the
 * model's log name and loads. So concurrent `load --keep`s of one model load it once, and none
 * touches the log of the live server.
 *
 * What the server is loaded with (--ctx, --gpu, --kv-cache) goes to `__resident` as its own
 * options; it reports the context and the KV cache type in its info (ServerInfo), which `ps`
 * lists and `run` / `chat` / `serve` print when they attach.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { UnicornError } from '../engine/errors.js';
import { openRunner } from '../engine/generate/runner.js';
import type { KvCacheType } from '../engine/models/memory.js';
import { ResidentClient, listResident } from '../engine/server/client.js';
import { lockHolder } from '../engine/server/lock.js';
import type { ServerInfo } from '../engine/server/protocol.js';
import { createExclusive, identity, identityOf, lockFor, logFor, realModelDir, sameFile, uniqueBeside, unlinkIfSame } from '../engine/server/runtime.js';
import { AlreadyServedError, claimModel, serve } from '../engine/server/server.js';
import { escapeControl } from '../engine/text/escape.js';
import { kvCacheOption } from '../ui/args.js';
import { formatBytes, table } from '../ui/format.js';

const BIN = fileURLToPath(new URL('../../../bin/unicorn', import.meta.url));

/** `__resident`'s exit status when another process already serves (or is loading) the model. */
const BUSY = 75;

/** How many servers `load --keep` starts before it gives up on one that keeps losing the model to others. */
const MAX_STARTS = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The info of the server holding `model`, or null where none answers. */
async function residentInfo(model: string): Promise<ServerInfo | null> {
  const c = await ResidentClient.connect(model);
  if (c === null) return null;
  try {
    return await c.info();
  } catch {
    return null; // it went away while asked (stopping): the caller looks again
  } finally {
    c.close();
  }
}

/** What `load --keep` passes on to the server it starts. */
export interface ResidentOptions {
  readonly ctx?: number;
  readonly gpu?: string;
  readonly kvCache?: KvCacheType;
}

/** `__resident`'s arguments after the model for these options (only those given). */
export function residentArgs(opts: ResidentOptions): string[] {
  return [
    ...(opts.ctx === undefined ? [] : ['--ctx', String(opts.ctx)]),
    ...(opts.gpu === undefined ? [] : ['--gpu', opts.gpu]),
    ...(opts.kvCache === undefined ? [] : ['--kv-cache', opts.kvCache]),
  ];
}

/** The last lines of a log, read through its descriptor (it may have been renamed), escaped for the terminal. */
function logTail(fd: number): string {
  const size = fs.fstatSync(fd).size;
  const n = Math.min(size, 16 * 1024);
  const buf = Buffer.alloc(n);
  fs.readSync(fd, buf, 0, n, size - n);
  return buf
    .toString('utf8')
    .trim()
    .split('\n')
    .slice(-3)
    .map((l) => escapeControl(l))
    .join('\n');
}

/**
 * Starts `__resident` for a model with its output in a fresh log; resolves with the server's info
 * once it answers, or 'busy' where another process had claimed the model.
 */
async function spawnResident(model: string, opts: ResidentOptions, onWait: () => void): Promise<ServerInfo | 'busy'> {
  const log = uniqueBeside(logFor(model), 'starting');
  const fd = createExclusive(log, true);
  const litter = () => fs.rmSync(log, { force: true }); // still under its first name: the server never claimed the model
  process.once('exit', litter); // Ctrl-C while waiting
  try {
    const args = [BIN, '__resident', model, '--log', log, ...residentArgs(opts)];
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
    let exited: number | null = null;
    child.on('exit', (code, signal) => {
      exited = code ?? (signal === null ? 1 : 128);
    });
    child.on('error', () => {
      exited = 1;
    });
    child.unref();
    while (exited === null) {
      const info = await residentInfo(model);
      if (info !== null) return info;
      onWait();
      await sleep(100);
    }
    if (exited === BUSY) return 'busy';
    const kept = fs.existsSync(logFor(model)) && sameFile(identity(logFor(model)), identityOf(fs.fstatSync(fd)));
    throw new UnicornError(
      `the resident server for ${model} exited while loading (code ${exited}${kept ? `; its log: ${logFor(model)}` : ''}): ${logTail(fd)}`,
    );
  } finally {
    fs.closeSync(fd);
    litter();
    process.off('exit', litter);
  }
}

/**
 * The server holding a model, started where there is none: one already running answers (as it was
 * loaded: its info says its context and KV cache type); one that another process is loading (it
 * holds the model's lock) is waited for; otherwise a new one starts.
 */
export async function startResident(given: string, opts: ResidentOptions, onWait?: (s: number) => void): Promise<ServerInfo> {
  const model = realModelDir(given);
  const t0 = Date.now();
  const wait = () => onWait?.((Date.now() - t0) / 1000);
  for (let starts = 0; ;) {
    const info = await residentInfo(model);
    if (info !== null) return info;
    if (lockHolder(lockFor(model)) !== null) {
      // another process is loading it (or stopping)
      wait();
      await sleep(100);
      continue;
    }
    if (starts++ === MAX_STARTS)
      throw new UnicornError(`could not start a resident server for ${model}: other processes kept claiming it`, {
        hint: '`unicorn ps` lists the resident servers; try again',
      });
    const r = await spawnResident(model, opts, wait);
    if (r !== 'busy') return r;
  }
}

/**
 * Gives `__resident`'s log (its stdout, the fresh file `load --keep` made) the model's log name,
 * where it is still the file this process writes to.
 */
function adoptLog(log: string, model: string): void {
  try {
    if (sameFile(identity(log), identityOf(fs.fstatSync(1)))) fs.renameSync(log, logFor(model));
  } catch {
    // no log to adopt (stdout is not that file): the server runs without one
  }
}

/** Removes a log (the model's, after a clean stop) where it is this process's own (its stdout). */
function removeLog(log: string): void {
  try {
    unlinkIfSame(log, identityOf(fs.fstatSync(1)));
  } catch {
    // stdout is not a file
  }
}

export function residentCommand(): Command {
  return new Command('__resident')
    .argument('<model>')
    .option('--ctx <n>', '', (v) => Number(v))
    .option('--gpu <id>')
    .addOption(kvCacheOption())
    .option('--log <file>')
    .action(async (given: string, o: { ctx?: number; gpu?: string; kvCache?: KvCacheType; log?: string }) => {
      const model = realModelDir(given);
      let claim;
      try {
        claim = claimModel(model);
      } catch (e) {
        if (!(e instanceof AlreadyServedError)) throw e;
        process.stdout.write(`${e.message}\n`);
        if (o.log !== undefined) removeLog(o.log); // the one who started it may be gone
        process.exit(BUSY);
      }
      if (o.log !== undefined) adoptLog(o.log, model);
      const runner = openRunner(model, {
        text: false,
        ...(o.kvCache === undefined ? {} : { kvCache: o.kvCache }),
        ...(o.ctx === undefined ? {} : { ctx: o.ctx }),
        ...(o.gpu === undefined ? {} : { gpu: o.gpu }),
      });
      try {
        await serve(runner, { claim, onReady: (s) => process.stdout.write(`serving ${escapeControl(model)} on ${s} (pid ${process.pid})\n`) });
      } finally {
        runner.close();
      }
      // A clean stop: the log is of no more use (a crash leaves it for `unicorn load --keep` to show).
      removeLog(logFor(model));
      claim.release();
      // Gone once stopped, whatever handle might still hold the event loop: `unicorn stop` waits for this.
      process.exit(0);
    });
}

export function psCommand(): Command {
  return new Command('ps')
    .description('list the models held by resident servers (unicorn load --keep)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const list = (
        await listResident((socket, why) => process.stderr.write(`unicorn: warning: not listing ${escapeControl(socket)}: ${escapeControl(why)}\n`))
      ).map((r) => r.info);
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify(list)}\n`);
        return;
      }
      if (list.length === 0) {
        console.log('no resident models (unicorn load --keep <model> starts one)');
        return;
      }
      console.log(
        table(
          ['model', 'pid', 'device', 'GPU memory', 'context', 'kv cache', 'loaded'],
          list.map((i) => [
            escapeControl(i.model),
            String(i.pid),
            escapeControl(i.device),
            i.gpuBytes === null ? '-' : formatBytes(i.gpuBytes),
            `${i.contextUsed} / ${i.ctx}`,
            escapeControl(i.kvCache ?? 'f16'),
            i.loadedAt.replace('T', ' ').slice(0, 19),
          ]),
        ),
      );
    });
}

/**
 * The resident model a `stop` argument names: the real path of a directory that exists here, else
 * the one resident model whose folder has that name (so `unicorn stop kjv` works from any folder).
 */
async function stopTarget(given: string): Promise<string> {
  if (fs.existsSync(given)) return realModelDir(given);
  const list = (await listResident()).map((r) => r.info.model);
  const named = list.filter((m) => m === path.resolve(given) || path.basename(m) === given || m.endsWith(`${path.sep}${given.replace(/\/+$/, '')}`));
  if (named.length === 1) return named[0]!;
  const shown = escapeControl(given);
  if (named.length > 1)
    throw new UnicornError(`${shown} matches several resident models: ${named.map((m) => escapeControl(m)).join(', ')}`, {
      hint: 'name the model directory by its path',
    });
  throw new UnicornError(`no resident server holds ${shown}`, { hint: '`unicorn ps` lists what is resident' });
}

export function stopCommand(): Command {
  return new Command('stop')
    .description('unload a resident model (all of them with no argument)')
    .argument('[model]', 'model directory')
    .action(async (model?: string) => {
      const targets =
        model !== undefined
          ? [{ model: await stopTarget(model), socket: null }]
          : (await listResident()).map((r) => ({ model: r.info.model, socket: r.socket }));
      if (targets.length === 0) {
        console.log('no resident models');
        return;
      }
      for (const { model: m, socket } of targets) {
        const c = socket === null ? await ResidentClient.connect(m) : await ResidentClient.connectSocket(socket);
        if (c === null) throw new UnicornError(`no resident server holds ${escapeControl(m)}`, { hint: '`unicorn ps` lists what is resident' });
        try {
          await c.stop();
        } finally {
          c.close();
        }
        console.log(`stopped ${escapeControl(m)}`);
      }
    });
}
