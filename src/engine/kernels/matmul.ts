/**
 * Matrix x matrix (prefill): Y[tokens, rows] = X[tokens, cols] W[rows, cols]^T, W in any weight
 * format (weight-formats.ts), dequantized tile by tile in shared memory (the table's matmul kernel,
 * a variant per format and tiling). Same row-range splitting as matrix x vector for weights beyond
 * maxStorageBufferRange.
 */
import type { Commands } from '../vulkan/commands.js';
import type { Device } from '../vulkan/device.js';
import type { Allocator, GpuBuffer } from '../vulkan/memory.js';
import { type KernelOf, grid, kernelFor } from '../vulkan/pipeline.js';
import { type GpuMatrix, rowRanges } from './matvec.js';
import { KERNELS } from './table.js';
import { isGrouped } from './weight-formats.js';

const BM = 64;
const BN = 32;

export class MatMul {
  private dummy: GpuBuffer | undefined;
  /**
   * The DIRECT variant (no shared memory, no barriers: one invocation per row and 8 tokens), for CPU
   * drivers, where the tiled kernel's barriers cost more than its arithmetic saves (lavapipe: a
   * 4-token prefill of the bundled model 1.25 s -> a few ms); the tiled one elsewhere.
   */
  readonly direct: boolean;

  constructor(
    readonly device: Device,
    private readonly alloc: Allocator,
    opts: { direct?: boolean } = {},
  ) {
    this.direct = opts.direct ?? device.info.type === 'cpu';
  }

  private kernel(m: GpuMatrix): KernelOf<typeof KERNELS.matmul> {
    return kernelFor(this.device, KERNELS.matmul, { tiling: this.direct ? 'direct' : 'tiled', format: m.format }, { group: isGrouped(m.format) ? m.group : 0 });
  }

  /** Records Y = X W^T for `tokens` rows of X. */
  record(cmds: Commands, m: GpuMatrix, x: GpuBuffer, y: GpuBuffer, tokens: number, opts: { maxRange?: number } = {}): void {
    const kernel = this.kernel(m);
    this.dummy ??= this.alloc.alloc(16, 'matmul params placeholder');
    const maxY = this.device.info.maxComputeWorkGroupCount[1]!;
    if (Math.ceil(tokens / BN) > maxY) throw new RangeError(`matmul: ${tokens} tokens in one dispatch exceed the device's grid; split the batch`);
    for (const r of rowRanges(m, Math.min(opts.maxRange ?? Infinity, this.device.info.maxStorageBufferRange))) {
      const set = kernel.bind({
        w: { buffer: r.w, offset: r.wOffset, size: r.wBytes },
        params: r.params === null ? this.dummy : { buffer: r.params, offset: r.pOffset, size: r.pBytes },
        x: { buffer: x, size: tokens * m.cols * 4 },
        y,
      });
      const groups: [number, number] = this.direct
        ? grid(Math.ceil((r.rows * Math.ceil(tokens / 8)) / 64), this.device.info.maxComputeWorkGroupCount[0]!)
        : [Math.ceil(r.rows / BM), Math.ceil(tokens / BN)];
      cmds.dispatch(kernel, set, kernel.push({ rows: r.rows, cols: m.cols, tokens, yOffset: r.start, yStride: m.rows }), groups);
    }
  }
}
