/**
 * Matrix x matrix (prefill): Y[tokens, rows] = X[tokens, cols] W[rows, cols]^T, W in any weight
 * format (weight-formats.ts). Three kernels, one per kind of device:
 * - `coop` (matmul_coop.comp): cooperative matrices (VK_KHR_cooperative_matrix: tensor cores, WMMA,
 *   XMX), f16 x f16 products accumulated in f32, tiles of W dequantized into shared memory; where the
 *   device reports an f16 -> f32 shape and the matrix's rows are a multiple of 8 values long;
 * - `tiled` (matmul.comp): a shared-memory tile of 64 x 32 outputs in f32, on other GPUs;
 * - `direct` (matmul.comp with DIRECT): no shared memory and no barriers, for CPU drivers.
 * UNICORN_MATMUL=coop|tiled|direct picks one (coop only where the device has it); UNICORN_MATMUL_TILE
 * = `bm,bn,wm,wn` sets the cooperative kernel's tiles (benchmarks). Same row-range splitting as matrix
 * x vector for weights beyond maxStorageBufferRange.
 */
import { UnicornError } from '../errors.js';
import { Commands } from '../vulkan/commands.js';
import type { CoopMatShape, Device, DeviceInfo } from '../vulkan/device.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { download, uploadNew } from '../vulkan/transfer.js';
import { type KernelOf, grid, kernelFor } from '../vulkan/pipeline.js';
import { type GpuMatrix, rowRanges, singleMatrix } from './matvec.js';
import { KERNELS } from './table.js';
import { isGrouped } from './weight-formats.js';

export type MatMulKind = 'coop' | 'tiled' | 'direct';

/** The cooperative kernel's shape and tiles (the spec constants of matmul_coop.comp). */
export interface CoopTiles {
  /** The device's cooperative-matrix shape, C[tm x tn] += A[tm x tk] B[tk x tn]. */
  readonly tm: number;
  readonly tn: number;
  readonly tk: number;
  /** A workgroup's tile (weight rows x tokens) and each subgroup's part of it. */
  readonly bm: number;
  readonly bn: number;
  readonly wm: number;
  readonly wn: number;
  /** The subgroup size it runs at; the workgroup is (bm / wm) * (bn / wn) subgroups. */
  readonly sg: number;
}

/** matmul_coop.comp's chunk of k (its shapes' k divide it). */
const BK = 32;

/** The f16 x f16 -> f32 shape the kernel uses: 16 x 16 x 16 where there is one, else the largest that fits a chunk of k. */
export function coopShape(shapes: readonly CoopMatShape[]): CoopMatShape | undefined {
  const usable = shapes.filter((s) => s.a === 'f16' && s.b === 'f16' && s.c === 'f32' && s.result === 'f32' && BK % s.k === 0 && s.m <= 32 && s.n <= 32);
  return usable.find((s) => s.m === 16 && s.n === 16 && s.k === 16) ?? [...usable].sort((a, b) => b.m * b.n * b.k - a.m * a.n * a.k)[0];
}

/** Why a set of tiles cannot run on a device, or undefined when it can. */
export function coopTilesProblem(t: CoopTiles, info: DeviceInfo): string | undefined {
  if (t.wm % t.tm !== 0 || t.wn % t.tn !== 0) return `a subgroup's part ${t.wm} x ${t.wn} is not a whole number of ${t.tm} x ${t.tn} matrices`;
  if (t.bm % t.wm !== 0 || t.bn % t.wn !== 0) return `the tile ${t.bm} x ${t.bn} is not a whole number of ${t.wm} x ${t.wn} parts`;
  const invocations = (t.bm / t.wm) * (t.bn / t.wn) * t.sg;
  if (invocations > info.maxComputeWorkGroupInvocations) return `${invocations} invocations exceed the device's ${info.maxComputeWorkGroupInvocations}`;
  // Shared memory: W's and X's chunks in f16, rows padded by 8 halves; an accumulator per subgroup.
  const shared = (t.bm + t.bn) * (BK + 8) * 2 + (t.bm / t.wm) * (t.bn / t.wn) * t.tm * t.tn * 4;
  if (shared > info.maxComputeSharedMemorySize) return `${shared} bytes of shared memory exceed the device's ${info.maxComputeSharedMemorySize}`;
  return undefined;
}

/**
 * The cooperative kernel's tiles on a device, or null where it has no usable shape. Tiles: 128 rows x
 * 128 tokens in parts of 64 rows x one matrix of tokens with the 16 x 16 shapes (the best of 20 tilings
 * on the H200: 116 TFLOPS on INT4 at 14336 x 4096 x 512 tokens against 34 for 128 x 64 in parts of
 * 32 x 32; every part wider than one matrix was ~3x slower there), 4 x 4 matrices in parts of 2 x 1 with
 * smaller ones (lavapipe's 8 x 8); UNICORN_MATMUL_TILE overrides. Not measured on AMD or Intel.
 */
export function coopTiles(info: DeviceInfo, forced = process.env['UNICORN_MATMUL_TILE']): CoopTiles | null {
  const shape = info.cooperativeMatrix ? coopShape(info.coopMatShapes) : undefined;
  if (shape === undefined) return null;
  const big = shape.m >= 16 && shape.n >= 16;
  let [bm, bn, wm, wn] = big ? [128, 128, 64, shape.n] : [4 * shape.m, 4 * shape.n, 2 * shape.m, shape.n];
  if (forced !== undefined && forced !== '') {
    const v = forced.split(',').map(Number);
    if (v.length !== 4 || !v.every((n) => Number.isInteger(n) && n > 0)) {
      throw new UnicornError(`UNICORN_MATMUL_TILE='${forced}' is not bm,bn,wm,wn (four positive integers, e.g. 128,128,64,16)`);
    }
    [bm, bn, wm, wn] = v as [number, number, number, number];
  }
  const tiles = { tm: shape.m, tn: shape.n, tk: shape.k, bm: bm!, bn: bn!, wm: wm!, wn: wn!, sg: info.subgroupSize };
  const problem = coopTilesProblem(tiles, info);
  if (problem !== undefined) {
    if (forced !== undefined && forced !== '') throw new UnicornError(`UNICORN_MATMUL_TILE='${forced}' does not fit ${info.name}: ${problem}`);
    return null;
  }
  return tiles;
}

/** The kernel a device gets by default, or the one UNICORN_MATMUL asks for (refused where it cannot run). */
export function matmulKind(info: DeviceInfo, forced = process.env['UNICORN_MATMUL']): MatMulKind {
  const coop = coopTiles(info) !== null;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'coop' && forced !== 'tiled' && forced !== 'direct') throw new UnicornError(`UNICORN_MATMUL='${forced}' is not coop, tiled or direct`);
    if (forced === 'coop' && !coop) {
      throw new UnicornError(`UNICORN_MATMUL=coop: ${info.name} has no usable cooperative matrices (VK_KHR_cooperative_matrix with an f16 x f16 -> f32 shape)`);
    }
    return forced;
  }
  // CPU drivers pay for every barrier by stepping through every invocation (lavapipe: a 4-token prefill
  // of the bundled model 1.25 s tiled -> a few ms direct), cooperative or not.
  if (info.type === 'cpu') return 'direct';
  return coop ? 'coop' : 'tiled';
}

/** Devices whose cooperative kernel was checked, and what the check found (undefined: right). */
const coopChecked = new WeakMap<Device, { problem: string | undefined }>();

/**
 * Why the cooperative kernel computes wrong on this device, or undefined when it is right: checked once
 * per device on a product of small integers (exact in f16 and f32) over two tiles in each direction,
 * partial ones included, against the CPU. A driver may lay out subgroups or cooperative matrices other
 * than the kernel expects (a subgroup size it does not honour; AMD and Intel are not measured here).
 */
export function coopProblem(device: Device, alloc: Allocator, tiles?: CoopTiles): string | undefined {
  const seen = tiles === undefined ? coopChecked.get(device) : undefined;
  if (seen !== undefined) return seen.problem;
  const t = tiles ?? coopTiles(device.info);
  if (t === null) return 'no cooperative matrices';
  const [rows, cols, tokens] = [t.bm + 3, 64, t.bn + 5];
  const small = (i: number) => ((i * 7919) % 5) - 2;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => small(i));
  const x = Float32Array.from({ length: tokens * cols }, (_, i) => small(i * 3 + 1));
  const cmds = new Commands(device);
  const wb = uploadNew(alloc, cmds, new Uint8Array(w.buffer), 'cooperative check weights');
  const xb = uploadNew(alloc, cmds, new Uint8Array(x.buffer), 'cooperative check x');
  const yb = uploadNew(alloc, cmds, new Uint8Array(new Float32Array(rows * tokens).fill(Number.NaN).buffer), 'cooperative check y');
  let problem: string | undefined;
  try {
    const m = singleMatrix('f32', rows, cols, 64, wb, null);
    cmds.begin();
    new MatMul(device, alloc, { kind: 'coop', checked: true, tiles: t }).record(cmds, m, xb, yb, tokens);
    cmds.submitAndWait();
    const got = new Float32Array(rows * tokens);
    download(alloc, cmds, yb, new Uint8Array(got.buffer));
    for (let tk = 0; tk < tokens && problem === undefined; tk++) {
      for (let r = 0; r < rows; r++) {
        let want = 0;
        for (let k = 0; k < cols; k++) want += w[r * cols + k]! * x[tk * cols + k]!;
        if (got[tk * rows + r] !== want) {
          problem = `token ${tk}, row ${r}: ${got[tk * rows + r]} instead of ${want}`;
          break;
        }
      }
    }
  } finally {
    for (const b of [wb, xb, yb]) alloc.free(b);
  }
  if (tiles === undefined) coopChecked.set(device, { problem });
  return problem;
}

export class MatMul {
  private dummy: GpuBuffer | undefined;
  readonly kind: MatMulKind;
  /** The cooperative kernel's tiles (kind coop). */
  readonly tiles: CoopTiles | null;
  /** Why the device's default kernel, coop, was set aside for tiled (its check failed); undefined otherwise. */
  readonly fallback: string | undefined;

  constructor(
    readonly device: Device,
    private readonly alloc: Allocator,
    opts: { kind?: MatMulKind; checked?: boolean; tiles?: CoopTiles } = {},
  ) {
    let kind = opts.kind ?? matmulKind(device.info);
    if (kind === 'coop' && opts.checked !== true) {
      // A wrong cooperative kernel is never used: asked for by name it is an error, by default the tiled one runs.
      const problem = coopProblem(device, alloc);
      if (problem !== undefined) {
        if (opts.kind === 'coop' || process.env['UNICORN_MATMUL'] === 'coop') {
          throw new UnicornError(`the cooperative-matrix matmul computes wrong on ${device.info.name} (${problem})`, {
            hint: 'leave UNICORN_MATMUL unset (the tiled kernel runs), and please report this device and driver (`unicorn doctor`)',
          });
        }
        this.fallback = problem;
        kind = 'tiled';
      }
    }
    this.kind = kind;
    this.tiles = this.kind === 'coop' ? (opts.tiles ?? coopTiles(device.info)) : null;
    if (this.kind === 'coop' && this.tiles === null) throw new Error(`MatMul: ${device.info.name} has no cooperative matrices`);
  }

  /** The kernel in words (unicorn bench). */
  describe(): string {
    const info = this.device.info;
    if (this.fallback !== undefined) return `tiled (the cooperative-matrix kernel failed its check on this device: ${this.fallback})`;
    if (this.kind !== 'coop') return `${this.kind}${this.kind === 'direct' ? ' (a CPU driver)' : info.cooperativeMatrix ? '' : ' (no cooperative matrices)'}`;
    const t = this.tiles!;
    return `cooperative matrices ${t.tm}x${t.tn}x${t.tk} f16 -> f32, tiles of ${t.bm} rows x ${t.bn} tokens, ${t.wm} x ${t.wn} per subgroup`;
  }

  /** Whether the cooperative kernel takes this matrix (its rows a multiple of 8 values). */
  private coop(m: GpuMatrix): boolean {
    return this.tiles !== null && m.cols % 8 === 0;
  }

  /** Which kernel a matrix gets. */
  kindFor(m: GpuMatrix): MatMulKind {
    return this.kind === 'coop' && !this.coop(m) ? 'tiled' : this.kind;
  }

  /** Records Y = X W^T for `tokens` rows of X. */
  record(cmds: Commands, m: GpuMatrix, x: GpuBuffer, y: GpuBuffer, tokens: number, opts: { maxRange?: number } = {}): void {
    const kind = this.kindFor(m);
    const group = isGrouped(m.format) ? m.group : 0;
    let kernel: KernelOf<typeof KERNELS.matmul> | KernelOf<typeof KERNELS.matmul_coop>;
    let tokenTile: number;
    let rowTile: number;
    if (kind === 'coop') {
      const t = this.tiles!;
      const workgroup = (t.bm / t.wm) * (t.bn / t.wn) * t.sg;
      const sizes = this.device.info.subgroupSizes;
      const subgroupSize = sizes !== null && t.sg >= sizes.min && t.sg <= sizes.max ? t.sg : undefined;
      kernel = kernelFor(
        this.device,
        KERNELS.matmul_coop,
        { format: m.format },
        { workgroup, ...t, group },
        subgroupSize === undefined ? {} : { subgroupSize },
      );
      [rowTile, tokenTile] = [t.bm, t.bn];
    } else {
      kernel = kernelFor(this.device, KERNELS.matmul, { tiling: kind, format: m.format }, { group });
      [rowTile, tokenTile] = [64, 32];
    }
    this.dummy ??= this.alloc.alloc(16, 'matmul params placeholder');
    const maxY = this.device.info.maxComputeWorkGroupCount[1]!;
    if (kind !== 'direct' && Math.ceil(tokens / tokenTile) > maxY)
      throw new RangeError(`matmul: ${tokens} tokens in one dispatch exceed the device's grid; split the batch`);
    for (const r of rowRanges(m, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange))) {
      const set = kernel.bind({
        w: { buffer: r.w, offset: r.wOffset, size: r.wBytes },
        params: r.params === null ? this.dummy : { buffer: r.params, offset: r.pOffset, size: r.pBytes },
        x: { buffer: x, size: tokens * m.cols * 4 },
        y,
      });
      const groups: [number, number] =
        kind === 'direct'
          ? grid(Math.ceil((r.rows * Math.ceil(tokens / 8)) / 64), this.device.info.maxComputeWorkGroupCount[0]!)
          : [Math.ceil(r.rows / rowTile), Math.ceil(tokens / tokenTile)];
      cmds.dispatch(kernel, set, kernel.push({ rows: r.rows, cols: m.cols, tokens, yOffset: r.start, yStride: m.rows }), groups);
    }
  }
}
