/**
 * Matrix x vector (decode): y[rows] = W[rows, cols] x[cols], W in any weight format of
 * weight-formats.ts. Two kernels of the table (table.ts), a variant per weight format each: float x
 * (shaders/matvec.comp) and int8 x (shaders/matvec_dot.comp, for the formats that take int8
 * activations). Tile choices come from the matrix and the device: R rows per tile (one load of x
 * serves R rows) and T threads per tile (a multiple of the subgroup size), in workgroups of 128
 * threads (or T when larger).
 */
import type { Device } from '../vulkan/device.js';
import { VulkanError } from '../vulkan/ffi.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { type KernelOf, grid, kernelFor } from '../vulkan/pipeline.js';
import { Commands } from '../vulkan/commands.js';
import { type SubgroupChoice, checkSubgroupLayout, subgroupPlan } from './subgroups.js';
import { KERNELS } from './table.js';
import { type WeightFormat, WEIGHT_FORMATS, formatInfo, isGrouped, matrixRowBytes, paramsRowBytes, takesInt8 } from './weight-formats.js';

/** Consecutive rows of a matrix in buffers of their own. */
export interface MatrixPart {
  /** The part's first row in the matrix. */
  readonly start: number;
  readonly rows: number;
  readonly w: GpuBuffer;
  /** A quantized format's params (weight-formats.ts: INT8's f32 scale per row, INT4's (d, m) per group); null for float formats. */
  readonly params: GpuBuffer | null;
}

/**
 * A weight matrix on the GPU in one of the formats of docs/formats.md: one part, or where the matrix
 * is larger than the device allocates at once (maxMemoryAllocationSize: about 4 GiB on NVIDIA and
 * AMD), several, each holding whole rows (allocMatrix).
 */
export interface GpuMatrix {
  readonly format: WeightFormat;
  readonly rows: number;
  readonly cols: number;
  readonly group: number;
  readonly parts: readonly MatrixPart[];
}

/** A matrix held in one buffer (and its params' one). */
export function singleMatrix(format: WeightFormat, rows: number, cols: number, group: number, w: GpuBuffer, params: GpuBuffer | null): GpuMatrix {
  return { format, rows, cols, group, parts: [{ start: 0, rows, w, params }] };
}

/** Every buffer a matrix holds. */
export function matrixBuffers(m: GpuMatrix): GpuBuffer[] {
  return m.parts.flatMap((p) => (p.params === null ? [p.w] : [p.w, p.params]));
}

/**
 * Rows per part so that a part's weights and its params each fit one allocation of at most
 * `maxAllocation` bytes: a multiple of 64 rows (aligned offsets in every row range), or all rows.
 * A little is held back for the driver's size alignment of a buffer.
 */
export function rowsPerPart(format: WeightFormat, rows: number, cols: number, group: number, maxAllocation: number): number {
  const cap = maxAllocation - Math.min(65536, Math.floor(maxAllocation / 16));
  const perRow = Math.max(matrixRowBytes(format, cols), paramsRowBytes(format, cols, group), 1);
  const fit = Math.floor(cap / perRow);
  if (fit >= rows) return rows;
  const n = fit - (fit % 64);
  if (n <= 0) throw new VulkanError(`64 rows of ${perRow} bytes do not fit this device's largest allocation of ${maxAllocation} bytes`);
  return n;
}

/** Allocates a matrix in as many parts as the device's allocation limit asks (see GpuMatrix). */
export function allocMatrix(alloc: Allocator, format: WeightFormat, rows: number, cols: number, group: number, label: string): GpuMatrix {
  const per = rowsPerPart(format, rows, cols, group, alloc.device.info.maxMemoryAllocationSize);
  const parts: MatrixPart[] = [];
  try {
    for (let start = 0; start < rows; start += per) {
      const n = Math.min(per, rows - start);
      const name = per === rows ? label : `${label} rows ${start}..${start + n - 1}`;
      const w = alloc.alloc(Math.max(16, n * matrixRowBytes(format, cols)), name);
      parts.push({ start, rows: n, w, params: null });
      const pBytes = n * paramsRowBytes(format, cols, group);
      if (pBytes > 0) parts[parts.length - 1] = { start, rows: n, w, params: alloc.alloc(Math.max(16, pBytes), `${name} ${format} params`) };
    }
  } catch (e) {
    for (const b of matrixBuffers({ format, rows, cols, group, parts })) alloc.free(b);
    throw e;
  }
  return { format, rows, cols, group, parts };
}

/** x quantized to int8 per block of 32 (shaders/quant_act.glsl): values, and (scale, sum) per block. */
export interface QuantizedX {
  readonly q: GpuBuffer;
  readonly s: GpuBuffer;
}

/**
 * Int8 activations of one row length, as the producers write them: the values in natural order
 * (INT8 weights) and in nibble order (INT4), one (scale, sum) per 32 shared by both, and per block of
 * 32 a counter (zero between dispatches) for a matrix x vector that quantizes its own output (QUANT_OUT).
 */
export interface ActScratch {
  readonly q8: GpuBuffer;
  readonly q4: GpuBuffer;
  readonly s: GpuBuffer;
  readonly count: GpuBuffer;
}

/** The view of an activation scratch that a weight format reads. */
export function quantizedView(a: ActScratch, format: WeightFormat): QuantizedX {
  return { q: formatInfo(format).int8?.order === 'nibble' ? a.q4 : a.q8, s: a.s };
}

/** Either matrix x vector kernel: they share one interface (shaders/matvec_base.glsl). */
type MatVecKernel = KernelOf<typeof KERNELS.matvec>;

export interface Tiling {
  /** Rows per tile, 1 to 4. */
  readonly rows: number;
  /** Threads per tile: a multiple of the subgroup size, at least 32. */
  readonly threads: number;
  /** Blocks each thread takes per loop iteration (unrolled: more loads in flight); 1 by default. */
  readonly unroll?: number;
}

/**
 * Default tilings, from `bench:kernels --unroll` and `--probe` on the H100 (Llama 3 8B, Gemma 3 27B
 * FFN and 4096 x 4096 shapes): floats 1x64; INT8 on float activations 2x64. On the integer-dot path
 * (int8 activations) the aim is that a tile's threads x unroll cover a row's blocks in about one
 * iteration, so every load is in flight at once: INT8 1x128 with 2 blocks per iteration (1x64 for rows
 * of 4096 values or fewer); INT4 1x64, 1x32 with 4 blocks per iteration for rows of 4096 or fewer,
 * and 1x128 with 2 for rows of 16384 or more.
 */
export function defaultTiling(format: WeightFormat, cols: number, dot: boolean): Tiling {
  if (format === 'q8') return dot ? { rows: 1, threads: cols <= 4096 ? 64 : 128, unroll: 2 } : { rows: 2, threads: 64 };
  if (format === 'q4' && dot && cols <= 4096) return { rows: 1, threads: 32, unroll: 4 };
  if (format === 'q4' && dot && cols >= 16384) return { rows: 1, threads: 128, unroll: 2 };
  return { rows: 1, threads: 64 };
}

/** Tiling on CPU devices (lavapipe), measured there with `unicorn bench` on the bundled model. */
export const CPU_TILING: Tiling = { rows: 4, threads: 32, unroll: 1 };

/** Rows of a matrix that one dispatch binds: ranges of a part's weight and params buffers. */
export interface RowRange {
  /** The first row in the matrix. */
  readonly start: number;
  readonly rows: number;
  readonly w: GpuBuffer;
  readonly wOffset: number;
  readonly wBytes: number;
  readonly params: GpuBuffer | null;
  readonly pOffset: number;
  readonly pBytes: number;
}

/**
 * Splits a matrix into row ranges whose weights and params each fit one descriptor range
 * (maxStorageBufferRange: 128 MiB on lavapipe, 4 GiB on most GPUs) and hold fewer than 2^32 values
 * (the kernels index values in 32 bits), inside its parts. Ranges hold a multiple of 64 rows, which
 * keeps every bound offset aligned.
 */
export function rowRanges(m: GpuMatrix, maxRange: number): RowRange[] {
  const vpb = WEIGHT_FORMATS[m.format].valuesPerBlock;
  if (m.cols % vpb !== 0) throw new Error(`${m.format} weights: ${m.cols} columns are not a multiple of ${vpb}`);
  if (isGrouped(m.format) && (m.group % 32 !== 0 || m.cols % m.group !== 0))
    throw new Error(`${m.format} weights: group ${m.group} must be a multiple of 32 dividing ${m.cols}`);
  const rowBytes = matrixRowBytes(m.format, m.cols);
  const pRowBytes = paramsRowBytes(m.format, m.cols, m.group);
  const maxBytes = Math.min(maxRange, Math.floor(((2 ** 32 - 1) * 16) / vpb));
  const out: RowRange[] = [];
  for (const part of m.parts) {
    let chunk = Math.floor(maxBytes / Math.max(rowBytes, pRowBytes, 1));
    if (chunk >= part.rows) chunk = part.rows;
    else chunk -= chunk % 64;
    if (chunk <= 0) throw new VulkanError(`64 rows of ${rowBytes} bytes do not fit the device's storage-buffer range of ${maxRange}`);
    for (let at = 0; at < part.rows; at += chunk) {
      const rows = Math.min(chunk, part.rows - at);
      out.push({
        start: part.start + at,
        rows,
        w: part.w,
        wOffset: at * rowBytes,
        wBytes: rows * rowBytes,
        params: part.params,
        pOffset: at * pRowBytes,
        pBytes: rows * pRowBytes,
      });
    }
  }
  return out;
}

export class MatVec {
  readonly device: Device;
  /** The smallest number of threads per tile on this device. */
  readonly minThreads: number;
  /** The subgroup size the matrix x vector kernels run at (kernels/subgroups.ts). */
  readonly subgroup: SubgroupChoice;
  /** Tiling fixed by the caller (tests, benchmark sweeps); otherwise chosen per matrix. */
  readonly fixed: Partial<Tiling>;
  /**
   * INT8 and INT4 through int8 activations and packed integer dot products (x quantized per block of
   * 32 by a pre-pass), where the device has VK_KHR_shader_integer_dot_product; else float activations.
   */
  readonly integerDot: boolean;
  /**
   * INT8 on the integer-dot path even when x comes as floats. Off by default: on the H100 it ran at
   * 70-75% of the copy rate against 78-79% for float activations, the quantize_x pre-pass (a dispatch
   * and two barriers) costing more than the dot products save. Given x already quantized (`record`'s
   * xq), INT8 takes the integer-dot path regardless (90-95%).
   */
  readonly q8Dot: boolean;
  /** Quantized-activation scratch per row length. */
  private readonly xScratch = new Map<number, ActScratch>();
  private dummy: GpuBuffer | undefined;
  /** For one-off work outside any caller's recording (zeroing new counters). */
  private own: Commands | undefined;

  constructor(
    device: Device,
    private readonly alloc: Allocator,
    fixed: Partial<Tiling> & { integerDot?: boolean; q8Dot?: boolean } = {},
  ) {
    this.device = device;
    this.integerDot = (fixed.integerDot ?? true) && device.info.integerDotProduct;
    this.q8Dot = fixed.q8Dot ?? false;
    if (!device.info.subgroupArithmetic) throw new VulkanError(`${device.info.name} lacks subgroup arithmetic, which unicorn's kernels need`);
    checkSubgroupLayout(device);
    // A tile is whole subgroups; at least 32 threads, so that a workgroup (128 threads, or one tile)
    // holds at most 16 rows and its int8 output (QUANT_OUT) touches at most two blocks of 32.
    this.subgroup = subgroupPlan(device.info).matvec;
    this.minThreads = Math.max(32, this.subgroup.size);
    if (fixed.rows !== undefined && (fixed.rows < 1 || fixed.rows > 4)) throw new RangeError('rows per tile must be 1 to 4');
    if (fixed.unroll !== undefined && (!Number.isInteger(fixed.unroll) || fixed.unroll < 1 || fixed.unroll > 8)) throw new RangeError('unroll must be 1 to 8');
    if (fixed.threads !== undefined && (fixed.threads % this.minThreads !== 0 || fixed.threads > device.info.maxComputeWorkGroupInvocations)) {
      throw new RangeError(`threads per tile must be a multiple of ${this.minThreads}`);
    }
    this.fixed = {
      ...(fixed.rows === undefined ? {} : { rows: fixed.rows }),
      ...(fixed.threads === undefined ? {} : { threads: fixed.threads }),
      ...(fixed.unroll === undefined ? {} : { unroll: fixed.unroll }),
    };
  }

  /**
   * Tiling for a matrix on a path (integer dot or float activations): the default above, with one
   * row per tile when the matrix has too few rows to fill the GPU otherwise.
   */
  tiling(m: { format: WeightFormat; rows: number; cols: number }, dot = this.dotPath(m.format)): Tiling {
    // A CPU driver (lavapipe) runs a few threads over many invocations: each invocation's own cost
    // dominates, so fewer, longer ones (4 rows x 32 threads per tile: 2x the decode speed of the GPU
    // tilings there), and no rows held back to fill a GPU.
    const cpu = this.device.info.type === 'cpu';
    const d = cpu ? CPU_TILING : defaultTiling(m.format, m.cols, dot);
    const rows = this.fixed.rows ?? (cpu || m.rows / d.rows >= MatVec.MIN_TILES ? d.rows : 1);
    const threads = this.fixed.threads ?? Math.max(this.minThreads, d.threads);
    return { rows, threads, unroll: this.fixed.unroll ?? d.unroll ?? 1 };
  }

  static readonly MIN_TILES = 2048;

  /**
   * Records quantize_x: x [cols] -> int8 per block of 32 with (scale, sum), in both byte orders, into
   * the scratch kept per row length (a recorded step may replay it); returns the view `format` reads.
   * Barriers on both sides: the scratch may still be read by an earlier matvec, and the next one reads it.
   */
  quantizeX(cmds: Commands, x: GpuBuffer, cols: number, format: WeightFormat): QuantizedX {
    const scratch = this.scratch(cols);
    const k = kernelFor(this.device, KERNELS.quantize_x, {}, {});
    const blocks = cols / 32;
    cmds.barrier();
    const set = k.bind({ x: { buffer: x, size: cols * 4 }, xq8: scratch.q8, xq4: scratch.q4, xs: scratch.s });
    cmds.dispatch(k, set, k.push({ blocks }), grid(Math.ceil(blocks / 64), this.device.info.maxComputeWorkGroupCount[0]!));
    cmds.barrier();
    return quantizedView(scratch, format);
  }

  /**
   * The int8-activation scratch for rows of `cols` values (a multiple of 32), made on first use. Two
   * per row length: 'in' for what a producer step writes for the next projection, 'out' for a matrix
   * x vector's own int8 output (QUANT_OUT), which must not be the scratch it reads (where the MLP's width
   * equals the hidden size, the gated projection would overwrite its own input while reading it).
   */
  scratch(cols: number, slot: 'in' | 'out' = 'in'): ActScratch {
    const key = slot === 'in' ? cols : -cols;
    let s = this.xScratch.get(key);
    if (s === undefined) {
      const count = this.alloc.alloc((cols / 32) * 4, `block counters (${cols})`);
      (this.own ??= new Commands(this.device)).begin().fill(count, 0).barrier().submitAndWait();
      s = {
        q8: this.alloc.alloc(cols, `int8 x (${cols})`),
        q4: this.alloc.alloc(cols, `int8 x nibble order (${cols})`),
        s: this.alloc.alloc((cols / 32) * 8, `x scales (${cols})`),
        count,
      };
      this.xScratch.set(key, s);
    }
    return s;
  }

  /**
   * Whether matrices of this format take the integer-dot path (int8 activations) on this device when
   * x comes as floats (the formats that quantize float x for it: INT4; the others that take int8
   * activations, INT8, only with q8Dot). Given x already quantized (`record`'s xq), INT8 takes it too.
   */
  dotPath(format: WeightFormat, xQuantized = false): boolean {
    const int8 = formatInfo(format).int8;
    return this.integerDot && int8 !== null && (int8.quantizeFloatX || this.q8Dot || xQuantized);
  }

  /** Threads per workgroup for a tiling: 128, or one tile when a tile is larger. */
  workgroupSize(t: Tiling): number {
    return Math.min(Math.max(128, t.threads), this.device.info.maxComputeWorkGroupInvocations);
  }

  kernel(
    format: WeightFormat,
    group: number,
    t: Tiling,
    glu: 0 | 1 | 2 = 0,
    bias = false,
    accumulate = false,
    dot = this.dotPath(format),
    quantOut = false,
  ): MatVecKernel {
    const spec = {
      workgroup: this.workgroupSize(t),
      threads: t.threads,
      group: isGrouped(format) ? group : 0,
      rows: t.rows,
      glu,
      bias,
      accumulate,
      unroll: t.unroll ?? 1,
      quantOut,
    };
    const opts = this.subgroup.required ? { subgroupSize: this.subgroup.size } : {};
    if (!dot) return kernelFor(this.device, KERNELS.matvec, { format }, spec, opts);
    if (!takesInt8(format)) throw new Error(`matvec: ${format} weights do not take int8 activations`);
    return kernelFor(this.device, KERNELS.matvec_dot, { format }, spec, opts);
  }

  /**
   * Records y = W x, or with `up` and `act` the fused gated MLP input y = act(W x) * (U x), and with
   * `bias` y += bias, and with `accumulate` y += W x (a residual add). With `quantOut` (the scratch
   * for rows of m.rows values, a multiple of 32), y is also written as int8 activations for the next
   * projection. Rows are split into ranges whose bytes fit the device's maxStorageBufferRange
   * (128 MiB on lavapipe), each bound at its offset and dispatched on its own.
   */
  record(
    cmds: Commands,
    m: GpuMatrix,
    x: GpuBuffer,
    y: GpuBuffer,
    opts: {
      maxRange?: number;
      up?: GpuMatrix;
      act?: 'gelu_tanh' | 'silu';
      bias?: GpuBuffer;
      xq?: QuantizedX;
      accumulate?: boolean;
      quantOut?: ActScratch;
    } = {},
  ): void {
    const up = opts.up;
    if (up !== undefined && (up.format !== m.format || up.rows !== m.rows || up.cols !== m.cols || up.group !== m.group)) {
      throw new Error(`fused gate/up: both matrices must share format and shape (${m.format} ${m.rows}x${m.cols} vs ${up.format} ${up.rows}x${up.cols})`);
    }
    if ((up === undefined) !== (opts.act === undefined)) throw new Error('fused gate/up needs both the up matrix and the activation');
    const glu = opts.act === undefined ? 0 : opts.act === 'gelu_tanh' ? 1 : 2;
    const dot = this.dotPath(m.format, opts.xq !== undefined);
    const base = this.tiling(m, dot);
    const tiling = glu === 0 ? base : { ...base, rows: Math.min(base.rows, 2) };
    if (opts.accumulate === true && glu !== 0) throw new Error('matvec: accumulate does not combine with the fused gate/up');
    const qo = opts.quantOut;
    if (
      qo !== undefined &&
      (m.rows % 32 !== 0 || qo.count.size < (m.rows / 32) * 4 || qo.q8.size < m.rows || qo.q4.size < m.rows || qo.s.size < (m.rows / 32) * 8)
    ) {
      throw new Error(`matvec: int8 output needs rows in a multiple of 32 (${m.rows}) and the scratch for them`);
    }
    const kernel = this.kernel(m.format, m.group, tiling, glu, opts.bias !== undefined, opts.accumulate === true, dot, qo !== undefined);
    const ranges = rowRanges(m, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange));
    this.dummy ??= this.alloc.alloc(16, 'matvec placeholder');
    const dummy = this.dummy;
    if (dot && m.cols % 32 !== 0) throw new Error(`${m.format} weights: ${m.cols} columns are not a multiple of 32 (int8 activation blocks)`);
    const xq = dot ? (opts.xq ?? this.quantizeX(cmds, x, m.cols, m.format)) : undefined;
    if (qo !== undefined && xq !== undefined && [qo.q8, qo.q4, qo.s].some((b) => b === xq.q || b === xq.s)) {
      throw new Error("matvec: the int8 output would overwrite the int8 input it reads (use a scratch of its own: scratch(rows, 'out'))");
    }
    const rowsPerGroup = (this.workgroupSize(tiling) / tiling.threads) * tiling.rows;
    // The up matrix has the gate's shape and format, so the same parts and ranges.
    const upRanges = up === undefined ? undefined : rowRanges(up, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange));
    if (upRanges !== undefined && (upRanges.length !== ranges.length || upRanges.some((u, i) => u.start !== ranges[i]!.start || u.rows !== ranges[i]!.rows))) {
      throw new Error('fused gate/up: both matrices must be split into the same parts');
    }
    for (const [i, r] of ranges.entries()) {
      const u = upRanges?.[i];
      const params = (rr: RowRange) => (rr.params === null ? dummy : { buffer: rr.params, offset: rr.pOffset, size: rr.pBytes });
      const set = kernel.bind({
        w: { buffer: r.w, offset: r.wOffset, size: r.wBytes },
        params: params(r),
        x: xq === undefined ? { buffer: x, size: m.cols * 4 } : { buffer: xq.q, size: m.cols },
        y,
        w2: u === undefined ? dummy : { buffer: u.w, offset: u.wOffset, size: u.wBytes },
        params2: u === undefined ? dummy : params(u),
        bias: opts.bias ?? dummy,
        xScales: xq === undefined ? dummy : { buffer: xq.s, size: (m.cols / 32) * 8 },
        count: qo?.count ?? dummy,
        xq8: qo?.q8 ?? dummy,
        xq4: qo?.q4 ?? dummy,
        xs: qo?.s ?? dummy,
      });
      const [gx, gy] = grid(Math.ceil(r.rows / rowsPerGroup), this.device.info.maxComputeWorkGroupCount[0]!);
      cmds.dispatch(kernel, set, kernel.push({ rows: r.rows, cols: m.cols, yOffset: r.start }), [gx, gy]);
    }
  }
}
