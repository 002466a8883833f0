/**
 * What the resident-server tests share: the CLI run asynchronously (so a fake server in the test
 * process can answer it), a model's socket name computed as unicorn does, a fake "attacker's" server
 * that records whoever talks to it, and raw conversations with a socket.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { BIN } from '../../support/paths.js';

export interface CliResult {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** Runs `unicorn <args>` without blocking this process; killed after `timeoutMs` (a command that should have been refused and hangs instead). */
export function cli(
  args: readonly string[],
  o: { env: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number; uid?: number; gid?: number },
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: o.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
      ...(o.uid === undefined ? {} : { uid: o.uid }),
      ...(o.gid === undefined ? {} : { gid: o.gid }),
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin.end(o.input ?? '');
  });
}

/** `model-<hash>`: the stem of a model's socket, log and lock, as unicorn names them (sha256 of the real path). */
export function modelStem(modelDir: string): string {
  return `model-${createHash('sha256').update(fs.realpathSync(modelDir)).digest('hex').slice(0, 16)}`;
}

/** A server an attacker put somewhere: it answers like a resident server and counts who talked to it. */
export interface FakeServer {
  readonly connections: () => number;
  readonly received: () => string;
  close(): Promise<void>;
}

export function fakeServer(file: string): Promise<FakeServer> {
  let connections = 0;
  let received = '';
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
    s.on('data', (d) => {
      received += d.toString('utf8');
      const info = {
        model: 'FAKE',
        pid: 1,
        device: 'attacker',
        ctx: 512,
        contextUsed: 0,
        gpuBytes: null,
        loadedAt: new Date().toISOString(),
        loadSeconds: 1,
        bytes: 1,
        defaults: {},
        chatTemplate: true,
      };
      for (const line of d
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')) {
        const op = (JSON.parse(line) as { op: string }).op;
        if (op === 'info') s.write(`${JSON.stringify({ op: 'info', info })}\n`);
        else
          s.write(
            `${JSON.stringify({ op: 'text', text: 'ATTACKER TEXT' })}\n${JSON.stringify({ op: 'done', result: { text: 'ATTACKER TEXT', tokens: [1], finish: 'eos', promptTokens: 1, contextLimit: 512, device: 'attacker', timeToFirstTokenMs: 1, prefillTokensPerSecond: null, decodeTokensPerSecond: null } })}\n`,
          );
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () =>
      resolve({
        connections: () => connections,
        received: () => received,
        close: () =>
          new Promise<void>((r) => {
            for (const s of socks) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

/**
 * Connects to a socket, writes `data` (then ends the writing side if `end`), and collects the JSON
 * lines that come back until `until` says enough, the server closes, or `timeoutMs` passes.
 */
export function converse(
  file: string,
  data: string | Buffer,
  o: { until?: (got: unknown[]) => boolean; timeoutMs?: number; end?: boolean } = {},
): Promise<{ got: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const got: unknown[] = [];
    let buf = '';
    let settled = false;
    const s = net.connect(file);
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ got, closed });
    };
    const timer = setTimeout(() => finish(false), o.timeoutMs ?? 10_000);
    s.on('connect', () => {
      s.write(data);
      if (o.end === true) s.end();
    });
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        got.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
      if (o.until?.(got) === true) finish(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') finish(true);
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    s.on('close', () => finish(true));
  });
}

/** Whether a process exists (and is not a zombie nobody reaped). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/** Ends a process the test started (a server that should have been refused, or one left by a failing test). */
export function kill(pid: number | undefined): void {
  if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 1) return;
  try {
    // Only a resident server (never a pid a fake server made up).
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('__resident')) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** The pid a `load --keep --json` printed, if it printed one. */
export function keptPid(r: CliResult): number | undefined {
  try {
    return (JSON.parse(r.out) as { pid?: number }).pid;
  } catch {
    return undefined;
  }
}
