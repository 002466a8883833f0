/**
 * Matrix x vector (decode): y[rows] = W[rows, cols] x[cols], W in f32, f16, bf16, INT8 or INT4.
 * One shader source, one variant per weight format (shaders/variants.json). Tile choices come from
 * the device once: T threads per tile = max(32, subgroup size), R rows per tile (one load of x serves
 * R rows), 4 tiles per workgroup.
 */
import type { Device } from '../vulkan/device.js';
import { VulkanError } from '../vulkan/ffi.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { Kernel, grid } from '../vulkan/pipeline.js';
import type { Commands } from '../vulkan/commands.js';

export type WeightFormatName = 'f32' | 'f16' | 'bf16' | 'q8' | 'q4';

/** Values per 16-byte block: the row length must be a multiple of it. */
export const VALUES_PER_BLOCK: Record<WeightFormatName, number> = { f32: 4, f16: 8, bf16: 8, q8: 16, q4: 32 };
const BYTES_PER_VALUE: Record<WeightFormatName, number> = { f32: 4, f16: 2, bf16: 2, q8: 1, q4: 0.5 };

/** A weight matrix on the GPU in one of the formats of docs/formats.md. */
export interface GpuMatrix {
  readonly format: WeightFormatName;
  readonly rows: number;
  readonly cols: number;
  readonly group: number;
  readonly w: GpuBuffer;
  /** q8: f32 scale per row; q4: packed (f16 d, f16 m) per group; absent for float formats. */
  readonly params: GpuBuffer | null;
}

export function matrixRowBytes(format: WeightFormatName, cols: number): number {
  return cols * BYTES_PER_VALUE[format];
}

export function paramsRowBytes(format: WeightFormatName, cols: number, group: number): number {
  return format === 'q8' ? 4 : format === 'q4' ? (cols / group) * 4 : 0;
}

export class MatVec {
  readonly device: Device;
  readonly threadsPerRow: number;
  readonly workgroupSize: number;
  /** Rows per tile when fixed by the caller; otherwise chosen per matrix (tileRows). */
  readonly rowsPerTile: number | undefined;
  private readonly kernels = new Map<string, Kernel>();
  private dummy: GpuBuffer | undefined;

  constructor(device: Device, private readonly alloc: Allocator, opts: { rowsPerTile?: number } = {}) {
    this.device = device;
    const sg = device.info.subgroupSize;
    if (!device.info.subgroupArithmetic) throw new VulkanError(`${device.info.name} lacks subgroup arithmetic, which unicorn's kernels need`);
    this.threadsPerRow = Math.max(32, sg);
    this.workgroupSize = Math.min(this.threadsPerRow * 4, device.info.maxComputeWorkGroupInvocations);
    this.rowsPerTile = opts.rowsPerTile;
    if (this.rowsPerTile !== undefined && (this.rowsPerTile < 1 || this.rowsPerTile > 8)) throw new RangeError('rowsPerTile must be 1 to 8');
  }

  /**
   * Rows per tile for a matrix: as many as still leave at least MIN_WORKGROUPS workgroups (each load
   * of x then serves several rows), else one. Measured on the H100 (bench:kernels): 4 rows lift
   * INT8 on a 21504-row matrix from 57% to 75% of the copy rate, while a 5376-row matrix with
   * 4 rows per tile has too few workgroups to fill the GPU.
   */
  tileRows(rows: number): number {
    if (this.rowsPerTile !== undefined) return this.rowsPerTile;
    const tilesPerGroup = this.workgroupSize / this.threadsPerRow;
    for (const r of [4, 2]) if (rows / (r * tilesPerGroup) >= MatVec.MIN_WORKGROUPS) return r;
    return 1;
  }

  static readonly MIN_WORKGROUPS = 1024;

  kernel(format: WeightFormatName, group: number, rowsPerTile: number): Kernel {
    const key = `${format}/${format === 'q4' ? group : 0}/${rowsPerTile}`;
    let k = this.kernels.get(key);
    if (k === undefined) {
      k = new Kernel(this.device, { variant: `matvec_${format}`, bindings: 4, pushBytes: 12, spec: [this.workgroupSize, this.threadsPerRow, group, rowsPerTile] }, 4096);
      this.kernels.set(key, k);
    }
    return k;
  }

  /**
   * Records y = W x. Rows are split into ranges whose bytes fit the device's maxStorageBufferRange
   * (128 MiB on lavapipe), each bound at its offset and dispatched on its own.
   */
  record(cmds: Commands, m: GpuMatrix, x: GpuBuffer, y: GpuBuffer, opts: { maxRange?: number } = {}): void {
    const vpb = VALUES_PER_BLOCK[m.format];
    if (m.cols % vpb !== 0) throw new VulkanError(`matvec ${m.format}: ${m.cols} columns are not a multiple of ${vpb}`);
    if (m.format === 'q4' && (m.group % 32 !== 0 || m.cols % m.group !== 0)) throw new VulkanError(`matvec q4: group ${m.group} must be a multiple of 32 dividing ${m.cols}`);
    const tileRows = this.tileRows(m.rows);
    const kernel = this.kernel(m.format, m.group, tileRows);
    const maxRange = Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange);
    const rowBytes = matrixRowBytes(m.format, m.cols);
    const pRowBytes = paramsRowBytes(m.format, m.cols, m.group);
    // Rows per range: a multiple of 64 keeps every bound offset aligned (16 bytes at least).
    let chunk = Math.floor(maxRange / Math.max(rowBytes, pRowBytes, 1));
    if (chunk >= m.rows) chunk = m.rows;
    else chunk -= chunk % 64;
    if (chunk <= 0) throw new VulkanError(`matvec: one row of ${rowBytes} bytes does not fit the device's storage-buffer range of ${maxRange}`);
    this.dummy ??= this.alloc.alloc(16, 'matvec params placeholder');
    const rowsPerGroup = (this.workgroupSize / this.threadsPerRow) * tileRows;
    for (let start = 0; start < m.rows; start += chunk) {
      const rows = Math.min(chunk, m.rows - start);
      const set = kernel.bind([
        { buffer: m.w, offset: start * rowBytes, size: rows * rowBytes },
        m.params === null ? { buffer: this.dummy } : { buffer: m.params, offset: start * pRowBytes, size: rows * pRowBytes },
        { buffer: x, size: m.cols * 4 },
        { buffer: y },
      ]);
      const [gx, gy] = grid(Math.ceil(rows / rowsPerGroup), this.device.info.maxComputeWorkGroupCount[0]!);
      cmds.dispatch(kernel, set, new Uint32Array([rows, m.cols, start]), [gx, gy]);
    }
  }
}
