/**
 * Quantizes a model directory into a new one: a pool of worker threads quantizes row blocks of the
 * projection matrices in parallel, while one writer streams the results to sharded safetensors in
 * order. At most a window of blocks is in flight, so memory stays bounded whatever the model size.
 * Everything is written under a temporary directory that is renamed into place only when complete.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UnicornError, WriteError } from '../errors.js';
import { writeFailure } from '../formats/atomic.js';
import { DTYPE_SIZES, FLOAT_WEIGHT_DTYPES, decodeFloats } from '../formats/dtypes.js';
import { INDEX_FILE } from '../formats/checkpoint.js';
import { kindOf, pathProblem } from '../formats/files.js';
import { SafetensorsWriter, type TensorSpec } from '../formats/safetensors-writer.js';
import { type Scheme, formatFor, tensorRole } from '../models/memory.js';
import { type ModelFiles, openModel } from '../models/model-dir.js';
import { expectedTensors } from '../models/tensors.js';
import { FORMAT_VERSION, META, Q4_SUFFIX, Q8_SUFFIX } from './file-format.js';
import { INT4_GROUPS } from './layouts.js';
import { type QuantJob, type QuantResult, firstNonFinite } from './worker.js';

export type QuantScheme = Exclude<Scheme, 'bf16'>;

export class QuantizeError extends UnicornError {}

/**
 * The file unicorn writes into every output directory it makes. `--force` replaces an existing
 * output only when it holds this file: a directory unicorn wrote, never an arbitrary folder.
 */
export const OUTPUT_MARKER = '.unicorn-output.json';

export interface QuantizeOptions {
  readonly scheme: QuantScheme;
  readonly group: number;
  readonly workers: number;
  /** Replace an existing output directory. */
  readonly force?: boolean;
  /** Bytes per shard before a new one starts (default 4 GB). */
  readonly shardBytes?: number;
  /** f32 bytes of one row block handed to a worker (default 16 MiB). */
  readonly blockBytes?: number;
  readonly onProgress?: (p: { readonly doneBytes: number; readonly totalBytes: number; readonly tensors: number; readonly totalTensors: number }) => void;
  /**
   * Runs on the finished model in its temporary directory before it is moved into place (the
   * quality report); the string it returns is stored in every shard's metadata.
   */
  readonly evaluate?: (dir: string) => Promise<string | null>;
}

/** Space reserved in each shard's header for values known only at the end (patched in place). */
const RESERVED = { [META.source]: 64, [META.quality]: 400 } as const;

export interface QuantizeReport {
  readonly out: string;
  readonly sourceBytes: number;
  readonly outputBytes: number;
  readonly shards: number;
  readonly tensors: { readonly quantized: number; readonly kept: number };
  /** Quantizing and writing (the quality report not included). */
  readonly seconds: number;
  readonly evalSeconds: number;
  readonly sourceSha256: string;
  readonly skippedVision: number;
  /** Things the output will lack (no tokenizer.json: run and chat will need one). */
  readonly warnings: readonly string[];
}

interface Item {
  readonly name: string;
  readonly canonical: string;
  readonly format: 'float' | 'q8' | 'q4';
  readonly rows: number;
  readonly cols: number;
  readonly source: { readonly path: string; readonly offset: number; readonly byteLength: number; readonly dtype: keyof typeof DTYPE_SIZES };
  readonly specs: TensorSpec[];
  shard: number;
  /** Row blocks (quantized items). */
  readonly blocks: { readonly row: number; readonly rows: number }[];
}

const COPIED = /\.(json|jinja|model|txt|md)$/i;

/** The plan: one item per tensor the forward pass reads, in the source's order, assigned to shards. */
function plan(model: ModelFiles, o: QuantizeOptions): { items: Item[]; shards: number } {
  const expected = expectedTensors(model.spec);
  const items: Item[] = [];
  for (const [canonical, t] of model.bound.tensors) {
    if (t.quant !== undefined) {
      throw new QuantizeError(`${model.dir}: already quantized (${t.name} is ${t.quant.kind})`, {
        hint: 'quantize the original bf16/f16/f32 checkpoint instead',
      });
    }
    if (!FLOAT_WEIGHT_DTYPES.includes(t.dtype)) throw new QuantizeError(`${t.name}: ${t.dtype} tensors cannot be quantized`);
    const shape = expected.get(canonical)!;
    const role = tensorRole(canonical, shape);
    const f = formatFor(o.scheme, role, o.group);
    let format: Item['format'] = f.kind === 'float' ? 'float' : f.kind === 'int8' ? 'q8' : 'q4';
    const rows = shape[0]!;
    const cols = shape.length > 1 ? shape[1]! : 1;
    // Rows the kernels' blocks do not divide stay wider: INT4 needs whole groups, INT8 16-value blocks.
    if (format === 'q4' && cols % o.group !== 0) format = 'q8';
    if (format === 'q8' && cols % 16 !== 0) format = 'float';
    const specs: TensorSpec[] =
      format === 'float'
        ? [{ name: t.name, dtype: t.dtype, shape: t.shape }]
        : format === 'q8'
          ? [
              { name: t.name, dtype: 'I8', shape: [rows, cols] },
              { name: t.name + Q8_SUFFIX, dtype: 'F32', shape: [rows] },
            ]
          : [
              { name: t.name, dtype: 'U8', shape: [rows, cols / 2] },
              { name: t.name + Q4_SUFFIX, dtype: 'U32', shape: [rows, cols / o.group] },
            ];
    const blockRows = Math.max(1, Math.floor((o.blockBytes ?? 16 << 20) / (cols * 4)));
    const blocks: Item['blocks'] = [];
    if (format !== 'float') for (let r = 0; r < rows; r += blockRows) blocks.push({ row: r, rows: Math.min(blockRows, rows - r) });
    items.push({
      name: t.name,
      canonical,
      format,
      rows,
      cols,
      specs,
      shard: 0,
      blocks,
      source: { path: t.file.path, offset: t.fileOffset, byteLength: t.byteLength, dtype: t.dtype },
    });
  }
  // Source order (file, then offset): sequential reads.
  items.sort((a, b) => a.source.path.localeCompare(b.source.path) || a.source.offset - b.source.offset);
  const limit = o.shardBytes ?? 4e9;
  let shard = 0;
  let size = 0;
  for (const it of items) {
    const bytes = it.specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1) * DTYPE_SIZES[s.dtype], 0);
    if (size > 0 && size + bytes > limit) {
      shard++;
      size = 0;
    }
    it.shard = shard;
    size += bytes;
  }
  return { items, shards: shard + 1 };
}

/** A fixed pool of workers running QuantJobs, each job's promise resolved with its result. */
class Pool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { job: QuantJob; resolve: (r: QuantResult) => void; reject: (e: Error) => void }[] = [];
  private readonly pending = new Map<Worker, { resolve: (r: QuantResult) => void; reject: (e: Error) => void }>();

  constructor(n: number) {
    const url = new URL('./worker.js', import.meta.url);
    for (let i = 0; i < n; i++) {
      const w = new Worker(url);
      w.on('message', (r: QuantResult) => {
        const p = this.pending.get(w)!;
        this.pending.delete(w);
        this.idle.push(w);
        this.pump();
        p.resolve(r);
      });
      w.on('error', (e) => {
        const p = this.pending.get(w);
        this.pending.delete(w);
        p?.reject(e);
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  run(job: QuantJob): Promise<QuantResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const { job, resolve, reject } = this.queue.shift()!;
      this.pending.set(w, { resolve, reject });
      w.postMessage(job);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Files of the source directory that travel with the weights (config, tokenizer, generation, template). */
function companionFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && COPIED.test(e.name) && e.name !== INDEX_FILE && e.name !== OUTPUT_MARKER)
    .map((e) => e.name);
}

/** Whether `inner` is `outer` or lies inside it (both absolute, resolved). */
function within(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The real path of `p` even where it does not exist yet: the real path of its deepest existing
 * ancestor (symbolic links resolved) with the missing components after it.
 */
function realPathAhead(p: string): string {
  const rest: string[] = [];
  let cur = path.resolve(p);
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(cur) === cur) throw new QuantizeError(`${p}: ${pathProblem(e)}`);
      rest.unshift(path.basename(cur));
      cur = path.dirname(cur);
    }
  }
}

/**
 * Refuses an output that would lose data, before anything is read or written: one that is the
 * source, lies inside it, or contains it (replacing it would delete the source and everything
 * beside it), compared as real paths; an existing one without --force; and with --force, anything
 * but a directory unicorn itself wrote (OUTPUT_MARKER inside).
 */
function checkOutput(srcDir: string, out: string, force: boolean): void {
  const srcReal = fs.realpathSync(srcDir);
  const outReal = realPathAhead(out);
  if (outReal === srcReal) throw new QuantizeError(`${out}: is the source directory itself`, { hint: 'the output must be a new directory beside the source' });
  if (within(outReal, srcReal))
    throw new QuantizeError(`${out}: is inside the source directory ${srcReal}`, { hint: 'write the output beside the source, not into it' });
  if (within(srcReal, outReal)) {
    throw new QuantizeError(`${out}: contains the source ${srcReal}; replacing it would delete the source and everything beside it`, {
      hint: 'choose a new output directory beside the source',
    });
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new QuantizeError(`${out}: ${pathProblem(e)}`);
  }
  if (!force) throw new QuantizeError(`${out} already exists`, { hint: 'choose another output directory, or pass --force to replace it' });
  if (st.isSymbolicLink())
    throw new QuantizeError(`${out}: is a symbolic link; --force replaces only a directory unicorn wrote`, {
      hint: 'give the directory itself, or remove the link',
    });
  if (!st.isDirectory())
    throw new QuantizeError(`${out}: is ${kindOf(st)}, not a directory unicorn wrote; --force does not replace it`, {
      hint: 'remove it yourself, or choose another output directory',
    });
  if (!isUnicornOutput(out)) {
    throw new QuantizeError(`${out}: was not written by unicorn quantize (no ${OUTPUT_MARKER} in it); --force replaces only unicorn's own outputs`, {
      hint: 'remove it yourself if it is really to go, or choose another output directory',
    });
  }
}

/** Whether `dir` holds the marker unicorn writes into its outputs (a regular file, not a link). */
function isUnicornOutput(dir: string): boolean {
  try {
    return fs.lstatSync(path.join(dir, OUTPUT_MARKER)).isFile();
  } catch {
    return false;
  }
}

/**
 * Creates the missing folders above the output one at a time and returns them (removed again if
 * the run fails) (never fs.mkdirSync's recursive
 * mode: under /proc, where mkdir answers ENOENT although the parent exists, that loops for ever).
 */
function makeParents(dir: string): string[] {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path.dirname(cur) !== cur) {
        missing.push(cur);
        cur = path.dirname(cur);
        continue;
      }
      throw new QuantizeError(`${cur}: ${pathProblem(e)}`);
    }
    if (!st.isDirectory()) throw new QuantizeError(`${cur}: is ${kindOf(st)}, not a directory`, { hint: 'choose an output inside a directory' });
    break;
  }
  const made: string[] = [];
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      for (const m of made.reverse()) fs.rmdirSync(m);
      throw writeFailure(d, e);
    }
    made.push(d);
  }
  return made;
}

/**
 * Refuses a tensor holding NaN or an infinity, naming the first one: quantized, one such value
 * makes its whole row (or group) NaN, and the model then yields only token 0.
 */
function checkFinite(tensor: string, values: Float32Array, firstIndex: number, cols: number): void {
  const i = firstNonFinite(values);
  if (i >= 0) throw nonFiniteError(tensor, firstIndex + i, values[i]!, cols);
}

function nonFiniteError(tensor: string, at: number, v: number, cols: number): QuantizeError {
  const where = cols > 1 ? ` (row ${Math.floor(at / cols)}, column ${at % cols})` : '';
  return new QuantizeError(`${tensor}: value ${at}${where} is ${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'}: the source checkpoint is damaged`, {
    hint: 'download or export the checkpoint again; a quantized copy of it would produce only garbage (token 0 whatever the prompt)',
  });
}

/** The temporary directory beside `out`; removed on failure and at exit. */
function tempDirFor(out: string): string {
  return path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.tmp-${process.pid}`);
}

/** Removes temporary directories that killed runs (SIGKILL, power loss) left beside `out`. */
function removeStaleTemps(out: string): void {
  const dir = path.dirname(path.resolve(out));
  const re = new RegExp(`^\\.${path.basename(out).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.tmp-(\\d+)(\\.old)?$`);
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const m = re.exec(name);
    if (m === null || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

export async function quantizeModel(src: string, out: string, o: QuantizeOptions): Promise<QuantizeReport> {
  const t0 = performance.now();
  if (!(INT4_GROUPS as readonly number[]).includes(o.group)) throw new QuantizeError(`--group ${o.group}: INT4 groups are ${INT4_GROUPS.join(', ')}`);
  if (!Number.isInteger(o.workers) || o.workers < 1) throw new QuantizeError(`--workers ${o.workers}: at least 1`);
  const outAbs = path.resolve(out);
  const model = openModel(src);
  try {
    checkOutput(model.dir, out, o.force === true);
  } catch (e) {
    model.checkpoint.close();
    throw e;
  }
  const warnings: string[] = [];
  if (!fs.existsSync(path.join(model.dir, 'tokenizer.json'))) {
    warnings.push(
      `${model.dir} has no tokenizer.json, so neither has the output: inspect and bench work on it, run, chat and serve need one (copy the model's tokenizer.json into ${out})`,
    );
  }
  removeStaleTemps(out);
  const tmp = tempDirFor(out);
  let madeParents: string[] = [];
  const cleanup = () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    for (const d of madeParents.reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        /* no longer empty: kept */
      }
    }
    madeParents = [];
  };
  process.once('exit', cleanup);
  let pool: Pool | undefined;
  let writer: SafetensorsWriter | undefined;
  try {
    const { items, shards } = plan(model, o);
    fs.rmSync(tmp, { recursive: true, force: true });
    madeParents = makeParents(path.dirname(outAbs));
    try {
      fs.mkdirSync(tmp);
    } catch (e) {
      throw writeFailure(out, e);
    }
    const shardName = (i: number) =>
      shards === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const totalBytes = items.reduce((a, it) => a + it.source.byteLength, 0);
    pool = new Pool(
      Math.min(
        o.workers,
        Math.max(
          1,
          items.reduce((a, it) => a + it.blocks.length, 0),
        ),
      ),
    );
    const config = fs.readFileSync(path.join(model.dir, 'config.json'));
    const treeHash = createHash('sha256').update(config);
    const metadata: Record<string, string> = {
      [META.format]: FORMAT_VERSION,
      [META.scheme]: o.scheme,
      [META.group]: String(o.group),
      format: 'pt',
      [META.source]: ' '.repeat(RESERVED[META.source]),
      [META.quality]: ' '.repeat(RESERVED[META.quality]),
    };

    // Jobs in write order; a window of them in flight.
    const jobs: { item: Item; block: Item['blocks'][number]; promise?: Promise<QuantResult> }[] = [];
    for (const it of items) for (const b of it.blocks) jobs.push({ item: it, block: b });
    const window = Math.max(2, 2 * o.workers);
    let dispatched = 0;
    const dispatchUpTo = (n: number) => {
      for (; dispatched < Math.min(n, jobs.length); dispatched++) {
        const j = jobs[dispatched]!;
        const elem = DTYPE_SIZES[j.item.source.dtype];
        const rowBytes = j.item.cols * elem;
        j.promise = pool!.run({
          id: dispatched,
          path: j.item.source.path,
          tensor: j.item.name,
          offset: j.item.source.offset + j.block.row * rowBytes,
          length: j.block.rows * rowBytes,
          dtype: j.item.source.dtype,
          rows: j.block.rows,
          cols: j.item.cols,
          format: j.item.format as 'q8' | 'q4',
          group: o.group,
        });
      }
    };
    dispatchUpTo(window);
    let next = 0;
    let done = 0;
    let doneTensors = 0;
    let outputBytes = 0;
    const weightMap: Record<string, string> = {};
    let currentShard = -1;
    const openShard = (i: number) => {
      if (writer !== undefined) {
        writer.commit();
        outputBytes += fs.statSync(path.join(tmp, shardName(currentShard))).size;
      }
      currentShard = i;
      writer = new SafetensorsWriter(
        path.join(tmp, shardName(i)),
        items.filter((it) => it.shard === i).flatMap((it) => it.specs),
        metadata,
      );
    };
    const copyBuf = new Uint8Array(16 << 20);
    for (const it of items) {
      if (it.shard !== currentShard) openShard(it.shard);
      const w = writer!;
      for (const s of it.specs) weightMap[s.name] = shardName(it.shard);
      const tensorHash = createHash('sha256');
      if (it.format === 'float') {
        const fd = fs.openSync(it.source.path, 'r');
        try {
          for (let off = 0; off < it.source.byteLength; off += copyBuf.byteLength) {
            const n = Math.min(copyBuf.byteLength, it.source.byteLength - off);
            const chunk = copyBuf.subarray(0, n);
            let got = 0;
            while (got < n) {
              const r = fs.readSync(fd, chunk, got, n - got, it.source.offset + off + got);
              if (r === 0) throw new QuantizeError(`${it.source.path}: ends inside tensor ${it.name}`);
              got += r;
            }
            checkFinite(it.name, decodeFloats(it.source.dtype, chunk), off / DTYPE_SIZES[it.source.dtype], it.cols);
            tensorHash.update(createHash('sha256').update(chunk).digest());
            w.write(chunk);
          }
        } finally {
          fs.closeSync(fd);
        }
      } else {
        const params: Uint8Array[] = [];
        for (let b = 0; b < it.blocks.length; b++) {
          const r = await jobs[next]!.promise!;
          jobs[next]!.promise = undefined;
          next++;
          dispatchUpTo(next + window);
          if (r.error !== undefined) throw new QuantizeError(`${it.name}: ${r.error}`);
          if (r.nonFinite !== undefined) throw nonFiniteError(it.name, jobs[next - 1]!.block.row * it.cols + r.nonFinite.index, r.nonFinite.value, it.cols);
          tensorHash.update(Buffer.from(r.sha256!, 'hex'));
          w.write(r.main!);
          params.push(r.params!);
          done += jobs[next - 1]!.block.rows * it.cols * DTYPE_SIZES[it.source.dtype];
          o.onProgress?.({ doneBytes: Math.min(done, totalBytes), totalBytes, tensors: doneTensors, totalTensors: items.length });
        }
        for (const p of params) w.write(p);
      }
      if (it.format === 'float') done += it.source.byteLength;
      treeHash.update(it.name).update(tensorHash.digest());
      doneTensors++;
      o.onProgress?.({ doneBytes: Math.min(done, totalBytes), totalBytes, tensors: doneTensors, totalTensors: items.length });
    }
    writer!.commit();
    outputBytes += fs.statSync(path.join(tmp, shardName(currentShard))).size;
    writer = undefined;
    const sourceSha256 = treeHash.digest('hex');
    if (shards > 1) {
      fs.writeFileSync(path.join(tmp, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: outputBytes }, weight_map: weightMap }, null, 2)}\n`);
    }
    for (const f of companionFiles(model.dir)) fs.copyFileSync(path.join(model.dir, f), path.join(tmp, f));
    fs.writeFileSync(
      path.join(tmp, OUTPUT_MARKER),
      `${JSON.stringify({ written_by: 'unicorn quantize', scheme: o.scheme, group: o.group, source: fs.realpathSync(model.dir) })}\n`,
    );
    const shardFiles = Array.from({ length: shards }, (_, i) => path.join(tmp, shardName(i)));
    for (const f of shardFiles) patchMetadata(f, META.source, sourceSha256);
    const quantizeSeconds = (performance.now() - t0) / 1000;
    const quality = o.evaluate === undefined ? null : await o.evaluate(tmp);
    if (quality !== null) for (const f of shardFiles) patchMetadata(f, META.quality, quality);
    // Into place: the old output (with --force) is moved aside first and removed after.
    const aside = `${tmp}.old`;
    if (fs.existsSync(outAbs)) {
      // Checked again at the last moment: what is moved aside and removed must still be unicorn's.
      checkOutput(model.dir, out, o.force === true);
      fs.renameSync(outAbs, aside);
    }
    fs.renameSync(tmp, outAbs);
    madeParents = [];
    fs.rmSync(aside, { recursive: true, force: true });
    const sourceBytes = model.checkpoint.files.reduce((a, f) => a + f.size, 0);
    return {
      out: outAbs,
      sourceBytes,
      outputBytes,
      shards,
      tensors: { quantized: items.filter((i) => i.format !== 'float').length, kept: items.filter((i) => i.format === 'float').length },
      seconds: quantizeSeconds,
      evalSeconds: (performance.now() - t0) / 1000 - quantizeSeconds,
      sourceSha256,
      skippedVision: model.bound.skipped.filter((s) => s.reason === 'vision').length,
      warnings,
    };
  } catch (e) {
    writer?.abort();
    cleanup();
    if (e instanceof UnicornError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new WriteError(`${out}: the disk is full`, { hint: 'free space or choose another output directory; nothing was left behind' });
    if (typeof code === 'string') throw writeFailure(out, e);
    throw e;
  } finally {
    process.removeListener('exit', cleanup);
    await pool?.close();
    model.checkpoint.close();
  }
}

/**
 * Writes a value into the space reserved for `key` in a safetensors header (same length, padded
 * with spaces: readers trim), so a value known only after the data is written needs no rewrite.
 */
export function patchMetadata(file: string, key: string, value: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE(0)));
    fs.readSync(fd, header, 0, header.byteLength, 8);
    const text = header.toString('utf8');
    const m = new RegExp(`"${key.replace(/\./g, '\\.')}":"( *)"`).exec(text);
    if (m === null) throw new QuantizeError(`${file}: no space reserved for ${key}`);
    const encoded = JSON.stringify(value).slice(1, -1);
    if (Buffer.byteLength(encoded) > m[1]!.length)
      throw new QuantizeError(`${key}: ${Buffer.byteLength(encoded)} bytes do not fit the ${m[1]!.length} reserved`);
    const at = Buffer.byteLength(text.slice(0, m.index)) + key.length + 4;
    fs.writeSync(fd, Buffer.from(encoded.padEnd(m[1]!.length, ' ')), 0, m[1]!.length, 8 + at);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function defaultWorkers(): number {
  return Math.max(1, os.availableParallelism());
}
