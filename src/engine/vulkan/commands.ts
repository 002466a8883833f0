/**
 * Command recording and submission. A Commands object owns one command buffer and one fence: record
 * (dispatches with barriers between them, copies), then submit and wait. A recording made with
 * `reusable` can be submitted again and again without re-recording (the decode step).
 */
import type { Device } from './device.js';
import { VK, check, create, vk, type Handle } from './ffi.js';
import type { Kernel } from './pipeline.js';
import type { GpuBuffer } from './memory.js';

const FULL_BARRIER = {
  sType: VK.ST_MEMORY_BARRIER,
  pNext: null,
  srcAccessMask: VK.ACCESS_SHADER_WRITE | VK.ACCESS_TRANSFER_WRITE | VK.ACCESS_HOST_WRITE,
  dstAccessMask: VK.ACCESS_SHADER_READ | VK.ACCESS_SHADER_WRITE | VK.ACCESS_TRANSFER_READ | VK.ACCESS_TRANSFER_WRITE | VK.ACCESS_HOST_READ,
};
const ALL_STAGES = VK.PIPELINE_STAGE_COMPUTE_SHADER | VK.PIPELINE_STAGE_TRANSFER | VK.PIPELINE_STAGE_HOST;
/** Between dispatches only: shader writes before, shader and transfer reads and writes after. */
const COMPUTE_BARRIER = {
  sType: VK.ST_MEMORY_BARRIER,
  pNext: null,
  srcAccessMask: VK.ACCESS_SHADER_WRITE,
  dstAccessMask: VK.ACCESS_SHADER_READ | VK.ACCESS_SHADER_WRITE | VK.ACCESS_TRANSFER_READ | VK.ACCESS_TRANSFER_WRITE,
};

export class Commands {
  readonly device: Device;
  readonly cb: Handle;
  private readonly fence: Handle;
  private recording = false;
  /** What was recorded since the last barrier: only dispatches (a compute barrier suffices), or more. */
  private sinceBarrier: 'nothing' | 'compute' | 'other' = 'nothing';
  /** UNICORN_FULL_BARRIERS=1: every barrier a full one (to compare). */
  private readonly fullOnly = process.env['UNICORN_FULL_BARRIERS'] === '1';
  /** Buffers whose pointers a recording call received: kept alive until the fence signals. */
  private keepAlive: unknown[] = [];
  /**
   * When set, every command recorded is also written here as a line of text (the kernel, its
   * specialization and push constants, the grid, the buffer ranges by label; barriers; copies): the
   * GPU work a pass lowers to, for tests that hold it fixed across a refactor.
   */
  trace: string[] | undefined;

  constructor(device: Device) {
    const api = vk();
    this.device = device;
    const out: [Handle | null] = [null];
    check(
      api.vkAllocateCommandBuffers(
        device.handle,
        {
          sType: VK.ST_COMMAND_BUFFER_ALLOCATE_INFO,
          pNext: null,
          commandPool: device.commandPool,
          level: VK.COMMAND_BUFFER_LEVEL_PRIMARY,
          commandBufferCount: 1,
        },
        out,
      ) as number,
      'vkAllocateCommandBuffers',
    );
    this.cb = out[0]!;
    this.fence = create('vkCreateFence', (o) => api.vkCreateFence(device.handle, { sType: VK.ST_FENCE_CREATE_INFO, pNext: null, flags: 0 }, null, o));
    device.onDestroy(() => {
      api.vkDestroyFence(device.handle, this.fence, null);
      api.vkFreeCommandBuffers(device.handle, device.commandPool, 1, [this.cb]);
    });
  }

  begin(opts: { reusable?: boolean } = {}): this {
    // Beginning again would silently drop what is being recorded (e.g. an upload through staging
    // on the same Commands in the middle of recording a step): refuse instead.
    if (this.recording) throw new Error('Commands.begin(): a recording is already open; submit or end it first (upload inputs before recording)');
    const api = vk();
    this.wait();
    check(api.vkResetCommandBuffer(this.cb, 0) as number, 'vkResetCommandBuffer');
    check(
      api.vkBeginCommandBuffer(this.cb, {
        sType: VK.ST_COMMAND_BUFFER_BEGIN_INFO,
        pNext: null,
        flags: opts.reusable === true ? 0 : VK.COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT,
        pInheritanceInfo: null,
      }) as number,
      'vkBeginCommandBuffer',
    );
    this.recording = true;
    this.sinceBarrier = 'nothing';
    this.keepAlive = [];
    if (this.profiler !== undefined) {
      this.profiler.labels = [];
      api.vkCmdResetQueryPool(this.cb, this.profiler.pool, 0, this.profiler.max + 1);
      api.vkCmdWriteTimestamp(this.cb, VK.PIPELINE_STAGE_BOTTOM_OF_PIPE, this.profiler.pool, 0);
    }
    return this;
  }

  /**
   * GPU timestamps after every dispatch (profiling: bench:decode). Set before begin(); the labels
   * are the kernels' variants, and profile() reads the times of the last submit.
   */
  enableProfiling(maxDispatches = 4096): void {
    if (this.profiler !== undefined) return;
    const pool = create('vkCreateQueryPool', (o) =>
      vk().vkCreateQueryPool(
        this.device.handle,
        {
          sType: VK.ST_QUERY_POOL_CREATE_INFO,
          pNext: null,
          flags: 0,
          queryType: VK.QUERY_TYPE_TIMESTAMP,
          queryCount: maxDispatches + 1,
          pipelineStatistics: 0,
        },
        null,
        o,
      ),
    );
    this.device.onDestroy(() => vk().vkDestroyQueryPool(this.device.handle, pool, null));
    this.profiler = { pool, max: maxDispatches, labels: [] };
  }

  private profiler: { pool: Handle; max: number; labels: string[] } | undefined;

  /** Time of each dispatch of the last submit (from the previous timestamp to its own), in µs. */
  profile(): { label: string; us: number }[] {
    const p = this.profiler;
    if (p === undefined || p.labels.length === 0) return [];
    const n = p.labels.length + 1;
    const data = new BigUint64Array(n);
    check(
      vk().vkGetQueryPoolResults(this.device.handle, p.pool, 0, n, n * 8, data, 8, VK.QUERY_RESULT_64 | VK.QUERY_RESULT_WAIT) as number,
      'vkGetQueryPoolResults',
    );
    const ns = this.device.info.timestampPeriodNs;
    return p.labels.map((label, i) => ({ label, us: (Number(data[i + 1]! - data[i]!) * ns) / 1000 }));
  }

  dispatch(kernel: Kernel, set: Handle, push: Uint32Array, groups: readonly [number, number?, number?]): this {
    const api = vk();
    api.vkCmdBindPipeline(this.cb, VK.PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline);
    api.vkCmdBindDescriptorSets(this.cb, VK.PIPELINE_BIND_POINT_COMPUTE, kernel.layout, 0, 1, [set], 0, null);
    if (push.byteLength > 0) {
      api.vkCmdPushConstants(this.cb, kernel.layout, VK.SHADER_STAGE_COMPUTE, 0, push.byteLength, push);
      this.keepAlive.push(push);
    }
    api.vkCmdDispatch(this.cb, groups[0], groups[1] ?? 1, groups[2] ?? 1);
    if (this.sinceBarrier === 'nothing') this.sinceBarrier = 'compute';
    this.trace?.push(
      `${kernel.variant} spec [${kernel.constants.join(',')}]${kernel.subgroupSize === undefined ? '' : ` subgroup ${kernel.subgroupSize}`} push [${[...push].join(',')}] grid ${groups[0]}x${groups[1] ?? 1}x${groups[2] ?? 1}: ${kernel.describe(set)}`,
    );
    const p = this.profiler;
    if (p !== undefined && p.labels.length < p.max) {
      p.labels.push(kernel.variant);
      api.vkCmdWriteTimestamp(this.cb, VK.PIPELINE_STAGE_BOTTOM_OF_PIPE, p.pool, p.labels.length);
    }
    return this;
  }

  /**
   * Makes every earlier write visible to every later read. After dispatches alone, a compute barrier
   * (shader writes -> shader and transfer accesses); after copies or at the start, a full one
   * (compute, transfer and host). A recording ends with a full barrier, so the host may read results.
   */
  barrier(): this {
    this.trace?.push(this.sinceBarrier === 'compute' && !this.fullOnly ? 'barrier (compute)' : 'barrier');
    if (this.sinceBarrier === 'compute' && !this.fullOnly) {
      vk().vkCmdPipelineBarrier(
        this.cb,
        VK.PIPELINE_STAGE_COMPUTE_SHADER,
        VK.PIPELINE_STAGE_COMPUTE_SHADER | VK.PIPELINE_STAGE_TRANSFER,
        0,
        1,
        COMPUTE_BARRIER,
        0,
        null,
        0,
        null,
      );
    } else {
      vk().vkCmdPipelineBarrier(this.cb, ALL_STAGES, ALL_STAGES, 0, 1, FULL_BARRIER, 0, null, 0, null);
    }
    this.sinceBarrier = 'nothing';
    return this;
  }

  copy(src: GpuBuffer, dst: GpuBuffer, size: number, srcOffset = 0, dstOffset = 0): this {
    vk().vkCmdCopyBuffer(this.cb, src.handle, dst.handle, 1, { srcOffset, dstOffset, size });
    this.trace?.push(`copy ${src.label}@${srcOffset} -> ${dst.label}@${dstOffset} ${size} bytes`);
    this.sinceBarrier = 'other';
    return this;
  }

  /** Fills a buffer (or `size` bytes of it from `offset`, both multiples of 4) with a 32-bit value. */
  fill(dst: GpuBuffer, value: number, offset = 0, size = dst.size - offset): this {
    vk().vkCmdFillBuffer(this.cb, dst.handle, offset, size, value >>> 0);
    this.trace?.push(`fill ${dst.label}@${offset}+${size} with ${value >>> 0}`);
    this.sinceBarrier = 'other';
    return this;
  }

  /** Ends a recording that failed half-way, so the next begin() works; its commands are never submitted. */
  abandon(): void {
    if (!this.recording) return;
    vk().vkEndCommandBuffer(this.cb);
    this.recording = false;
    this.keepAlive = [];
  }

  end(): this {
    vk().vkCmdPipelineBarrier(this.cb, ALL_STAGES, ALL_STAGES, 0, 1, FULL_BARRIER, 0, null, 0, null);
    check(vk().vkEndCommandBuffer(this.cb) as number, 'vkEndCommandBuffer');
    this.recording = false;
    return this;
  }

  private pending = false;

  /** Submits the recorded commands without waiting (see wait()). */
  submit(): void {
    if (this.recording) this.end();
    if (this.pending) this.wait();
    check(
      vk().vkQueueSubmit(
        this.device.queue,
        1,
        {
          sType: VK.ST_SUBMIT_INFO,
          pNext: null,
          waitSemaphoreCount: 0,
          pWaitSemaphores: null,
          pWaitDstStageMask: null,
          commandBufferCount: 1,
          pCommandBuffers: [this.cb],
          signalSemaphoreCount: 0,
          pSignalSemaphores: null,
        },
        this.fence,
      ) as number,
      'vkQueueSubmit',
    );
    this.pending = true;
  }

  /** Waits for the last submit to finish (returns at once when nothing is in flight). */
  wait(timeoutNs = 60_000_000_000n): void {
    if (!this.pending) return;
    const api = vk();
    const r = check(api.vkWaitForFences(this.device.handle, 1, [this.fence], 1, timeoutNs) as number, 'vkWaitForFences', [2]);
    if (r === 2) throw new Error(`GPU work did not finish within ${Number(timeoutNs) / 1e9} s`);
    check(api.vkResetFences(this.device.handle, 1, [this.fence]) as number, 'vkResetFences');
    this.pending = false;
  }

  /** Submits the recorded commands and waits for them to finish. */
  submitAndWait(timeoutNs = 60_000_000_000n): void {
    this.submit();
    this.wait(timeoutNs);
  }
}
