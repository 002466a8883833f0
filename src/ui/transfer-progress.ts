/**
 * The one progress display of a download: a line per file in flight (bytes, MB/s, ETA) and a total
 * line, redrawn in place on a terminal at most ten times a second. Off a terminal (or with --json)
 * it draws nothing: only the retries are said, one line each.
 */
import type { PullEvent } from '../engine/hub/pull.js';
import { escapeControl } from '../engine/text/escape.js';
import { formatBytes } from './format.js';

interface FileState {
  size: number;
  done: number;
  /** Bytes there when this run started on it, and when: its rate counts only what came since. */
  from: number;
  t0: number;
}

function eta(left: number, rate: number): string {
  if (rate <= 0) return 'ETA -';
  const s = Math.round(left / rate);
  return s >= 3600 ? `ETA ${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `ETA ${Math.floor(s / 60)} min ${s % 60} s` : `ETA ${s} s`;
}

export function transferLine(name: string, done: number, size: number, from: number, seconds: number): string {
  const rate = (done - from) / Math.max(seconds, 1e-3);
  return `${name}  ${formatBytes(done)} / ${formatBytes(size)} · ${(rate / 1e6).toFixed(1)} MB/s · ${eta(size - done, rate)}`;
}

export class TransferProgress {
  private readonly active = new Map<string, FileState>();
  private total = 0;
  private done = 0;
  private files = 0;
  private filesDone = 0;
  private readonly t0 = performance.now();
  private drawn = 0;
  private last = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly live: boolean = stream.isTTY === true,
  ) {}

  readonly onEvent = (e: PullEvent): void => {
    const now = performance.now();
    if (e.kind === 'resolved') {
      // The total counts what is left to fetch now (config.json and the index came before it).
      this.total = e.bytes;
      this.files = e.toFetch;
      this.done = 0;
      this.filesDone = 0;
    } else if (e.kind === 'start') {
      const prev = this.active.get(e.file);
      this.active.set(e.file, { size: e.size, done: e.from, from: prev?.from ?? e.from, t0: prev?.t0 ?? now });
    } else if (e.kind === 'progress') {
      const f = this.active.get(e.file);
      if (f !== undefined) {
        this.done += e.done - f.done;
        f.done = e.done;
      }
    } else if (e.kind === 'done') {
      if (this.active.delete(e.file)) this.filesDone++;
    } else if (e.kind === 'retry') {
      this.clear();
      this.stream.write(`${escapeControl(`${e.file}: ${e.why}; resuming (attempt ${e.attempt + 1})`)}\n`);
    }
    if (this.live && (e.kind !== 'progress' || now - this.last > 100)) this.draw(now);
  };

  private clear(): void {
    if (this.live && this.drawn > 0) this.stream.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private draw(now: number): void {
    this.clear();
    this.last = now;
    const lines = [...this.active].map(([name, f]) => `  ${transferLine(name, f.done, f.size, f.from, (now - f.t0) / 1000)}`);
    if (this.files > 0) lines.push(`${transferLine(`total (${this.filesDone} of ${this.files} files)`, this.done, this.total, 0, (now - this.t0) / 1000)}`);
    const width = this.stream.columns ?? 120;
    for (const l of lines) this.stream.write(`${escapeControl(l).slice(0, Math.max(20, width - 1))}\n`);
    this.drawn = lines.length;
  }

  /** Takes the display off the screen (before the summary or an error). */
  finish(): void {
    this.clear();
  }
}
