/**
 * GPU memory placement. Tensors are sub-allocated from large blocks (never one vkAllocateMemory per
 * tensor). Policy, as on an AMD APU: device-local memory first (the VRAM carve-out), then memory the
 * GPU reaches in host RAM (GTT). Host-visible blocks stay mapped, so where memory is both device-local
 * and host-visible (APUs, resizable BAR) uploads write straight into it.
 */
import { UnicornError } from '../errors.js';
import type { Device, MemoryTypeInfo } from './device.js';
import { VK, VulkanError, check, create, koffi, vk, type Handle } from './ffi.js';

export type Placement = 'device' | 'host';

/** Out of GPU memory: says which heap, how much was asked and how much is left. */
export class OutOfDeviceMemoryError extends UnicornError {}

interface Block {
  readonly memory: Handle;
  readonly type: MemoryTypeInfo;
  readonly size: number;
  /** Free ranges, sorted by offset, never adjacent (coalesced on free). */
  free: { offset: number; size: number }[];
  /** Base address of the persistent mapping, for host-visible blocks. */
  readonly mapped: bigint | null;
}

/** A buffer bound to a range of a block. Descriptors may bind it whole or in ranges. */
export interface GpuBuffer {
  readonly handle: Handle;
  readonly size: number;
  readonly heap: number;
  readonly deviceLocal: boolean;
  /** Host address of the buffer's first byte, when its memory is host-visible. */
  readonly mapped: bigint | null;
  /**
   * Whether the host reads the mapping at memory speed (HOST_CACHED). Mapped VRAM (resizable BAR) and
   * an APU's carve-out are usually not: the CPU reads them at tens of MB/s, so read-backs of those go
   * through a copy into cached host memory (transfer.ts).
   */
  readonly hostCached: boolean;
  readonly label: string;
}

export interface HeapUsage {
  readonly heap: number;
  readonly deviceLocal: boolean;
  bytes: number;
  buffers: number;
  blocksBytes: number;
}

const USAGE = VK.BUFFER_USAGE_STORAGE | VK.BUFFER_USAGE_TRANSFER_SRC | VK.BUFFER_USAGE_TRANSFER_DST;
const MiB = 1024 * 1024;

/** The first free range of `block` that holds `need` bytes at `align`: its index and aligned start. */
function fit(block: Block, need: number, align: number): { index: number; start: number } | undefined {
  for (let index = 0; index < block.free.length; index++) {
    const r = block.free[index]!;
    const start = align * Math.ceil(r.offset / align);
    if (start + need <= r.offset + r.size) return { index, start };
  }
  return undefined;
}

/** Takes [at.start, at.start + need) out of the free range `fit` found, keeping what is left of it. */
function take(block: Block, at: { index: number; start: number }, need: number): number {
  const r = block.free[at.index]!;
  const pieces = [
    { offset: r.offset, size: at.start - r.offset },
    { offset: at.start + need, size: r.offset + r.size - at.start - need },
  ].filter((p) => p.size > 0);
  block.free.splice(at.index, 1, ...pieces);
  return at.start;
}

/** Returns [offset, offset + bytes) to the block, merging it with free neighbours. */
function release(block: Block, offset: number, bytes: number): void {
  const free = block.free;
  let i = free.findIndex((r) => r.offset > offset);
  if (i < 0) i = free.length;
  free.splice(i, 0, { offset, size: bytes });
  const next = free[i + 1];
  if (next !== undefined && offset + bytes === next.offset) {
    free[i]!.size += next.size;
    free.splice(i + 1, 1);
  }
  const prev = free[i - 1];
  if (prev !== undefined && prev.offset + prev.size === offset) {
    prev.size += free[i]!.size;
    free.splice(i, 1);
  }
}

export class Allocator {
  readonly device: Device;
  readonly blockSize: number;
  private readonly blocks: Block[] = [];
  private readonly live = new Map<Handle, { buffer: GpuBuffer; block: Block; offset: number; bytes: number }>();
  readonly usage = new Map<number, HeapUsage>();

  /** Whether device-placement memory that happens to be host-visible is mapped (direct uploads). */
  readonly mapDeviceMemory: boolean;

  /**
   * `mapDeviceMemory: false` treats device memory as a discrete GPU's: never written by the host, so
   * uploads go through staging. That is the default on a discrete GPU: with resizable BAR its VRAM is
   * host-visible, but the file read straight into it ran at 2.4 GB/s on the H200 against 5.2 GB/s
   * from the page cache, where staging reads at the cache's rate while the GPU copies (DMA) the
   * chunk before. Integrated GPUs and CPU drivers, whose device memory is the host's RAM, keep
   * direct writes. UNICORN_UPLOAD=direct|staged overrides (to measure). Tests use `false` so that
   * lavapipe runs the same staging paths as an NVIDIA or AMD card.
   */
  constructor(device: Device, opts: { blockSize?: number; mapDeviceMemory?: boolean } = {}) {
    this.device = device;
    this.blockSize = Math.min(opts.blockSize ?? 256 * MiB, device.info.maxMemoryAllocationSize);
    const env = process.env['UNICORN_UPLOAD'];
    this.mapDeviceMemory = opts.mapDeviceMemory ?? (env === 'direct' ? true : env === 'staged' ? false : device.info.type !== 'discrete-gpu');
    device.onDestroy(() => this.destroy());
  }

  /** Memory types to try for a placement, best first. */
  private candidates(placement: Placement, typeBits: number): MemoryTypeInfo[] {
    const types = this.device.info.memoryTypes.filter((t) => (typeBits & (1 << t.index)) !== 0);
    const score = (t: MemoryTypeInfo): number => {
      // Device placement: device-local first; among those, host-visible ones (APU carve-out, resizable
      // BAR) first, so uploads write straight into them; then host memory the GPU reaches (GTT).
      if (placement === 'device') return t.deviceLocal ? (t.hostVisible && this.mapDeviceMemory ? 0 : 1) : 10;
      // Host placement (staging, read-back): host-visible and coherent, cached preferred, not VRAM.
      if (!t.hostVisible || !t.hostCoherent) return 100;
      return (t.hostCached ? 0 : 1) + (t.deviceLocal ? 2 : 0);
    };
    return types.filter((t) => score(t) < 100 && (placement === 'host' || t.deviceLocal || t.hostVisible)).sort((a, b) => score(a) - score(b));
  }

  private newBlock(type: MemoryTypeInfo, size: number, map: boolean): Block | undefined {
    const api = vk();
    const out: [Handle | null] = [null];
    const r = api.vkAllocateMemory(
      this.device.handle,
      { sType: VK.ST_MEMORY_ALLOCATE_INFO, pNext: null, allocationSize: size, memoryTypeIndex: type.index },
      null,
      out,
    ) as number;
    if (r === -1 || r === -2) return undefined; // out of host or device memory: try the next type
    check(r, `vkAllocateMemory(${size} bytes, memory type ${type.index})`);
    let mapped: bigint | null = null;
    if (map) {
      const p: [bigint | null] = [null];
      check(api.vkMapMemory(this.device.handle, out[0], 0, VK.WHOLE_SIZE, 0, p) as number, 'vkMapMemory');
      mapped = p[0];
    }
    const block: Block = { memory: out[0]!, type, size, free: [{ offset: 0, size }], mapped };
    this.blocks.push(block);
    this.heapUsage(type.heap).blocksBytes += size;
    return block;
  }

  private heapUsage(heap: number): HeapUsage {
    let u = this.usage.get(heap);
    if (u === undefined) {
      u = { heap, deviceLocal: this.device.info.heaps[heap]?.deviceLocal ?? false, bytes: 0, buffers: 0, blocksBytes: 0 };
      this.usage.set(heap, u);
    }
    return u;
  }

  /**
   * Allocates a buffer of `size` bytes. Sizes above the device's allocation limit are refused: what
   * can be larger (weight matrices) is split before it gets here (allocMatrix).
   */
  alloc(size: number, label: string, placement: Placement = 'device'): GpuBuffer {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`alloc(${label}): size ${size} is not a positive integer`);
    const info = this.device.info;
    const tooLarge = (bytes: number) =>
      new VulkanError(`${label}: ${bytes} bytes is more than this device can allocate at once (${info.maxMemoryAllocationSize} bytes)`, undefined, {
        hint: 'use a shorter --ctx or a smaller --batch (what sizes this buffer), or a device with a larger maxMemoryAllocationSize',
      });
    if (size > info.maxMemoryAllocationSize) throw tooLarge(size);
    const api = vk();
    const handle = create(`vkCreateBuffer(${label})`, (out) =>
      api.vkCreateBuffer(
        this.device.handle,
        {
          sType: VK.ST_BUFFER_CREATE_INFO,
          pNext: null,
          flags: 0,
          size,
          usage: USAGE,
          sharingMode: 0,
          queueFamilyIndexCount: 0,
          pQueueFamilyIndices: null,
        },
        null,
        out,
      ),
    );
    const req = {} as { size: bigint | number; alignment: bigint | number; memoryTypeBits: number };
    api.vkGetBufferMemoryRequirements(this.device.handle, handle, req);
    const need = Number(req.size);
    if (need > info.maxMemoryAllocationSize) {
      api.vkDestroyBuffer(this.device.handle, handle, null);
      throw tooLarge(need);
    }
    const align = Math.max(Number(req.alignment), info.minStorageBufferOffsetAlignment);
    for (const type of this.candidates(placement, req.memoryTypeBits)) {
      const map = type.hostVisible && (placement === 'host' || this.mapDeviceMemory);
      let block: Block | undefined;
      let at: { index: number; start: number } | undefined;
      for (const b of this.blocks) {
        if (b.type.index !== type.index || (b.mapped !== null) !== map) continue;
        at = fit(b, need, align);
        if (at !== undefined) {
          block = b;
          break;
        }
      }
      if (block === undefined || at === undefined) {
        const heap = info.heaps[type.heap]!;
        const left = (heap.budget ?? heap.size) - this.heapUsage(type.heap).blocksBytes;
        if (need > left) continue;
        block = this.newBlock(type, Math.max(need, Math.min(this.blockSize, left)), map);
        if (block === undefined) continue;
        at = { index: 0, start: 0 };
      }
      const offset = take(block, at, need);
      check(api.vkBindBufferMemory(this.device.handle, handle, block.memory, offset) as number, `vkBindBufferMemory(${label})`);
      const u = this.heapUsage(type.heap);
      u.bytes += size;
      u.buffers += 1;
      const buffer: GpuBuffer = {
        handle,
        size,
        heap: type.heap,
        deviceLocal: type.deviceLocal,
        mapped: block.mapped === null ? null : block.mapped + BigInt(offset),
        hostCached: type.hostCached,
        label,
      };
      this.live.set(handle, { buffer, block, offset, bytes: need });
      return buffer;
    }
    api.vkDestroyBuffer(this.device.handle, handle, null);
    const heaps = info.heaps
      .map(
        (h) =>
          `heap ${h.index} (${h.deviceLocal ? 'device-local' : 'host'}, ${(h.size / 2 ** 30).toFixed(1)} GiB, ${((this.usage.get(h.index)?.blocksBytes ?? 0) / 2 ** 30).toFixed(2)} GiB used by unicorn)`,
      )
      .join('; ');
    throw new OutOfDeviceMemoryError(
      `out of GPU memory: ${label} needs ${(size / MiB).toFixed(1)} MiB (${placement} placement) and no memory heap can hold it: ${heaps}`,
      {
        hint: 'use a smaller model or a quantized one (unicorn inspect shows the memory plan), a shorter --ctx, or on an APU raise the UMA carve-out / GTT size',
      },
    );
  }

  /** Writes bytes into a host-visible buffer at `offset`. */
  write(buf: GpuBuffer, data: Uint8Array, offset = 0): void {
    if (buf.mapped === null) throw new Error(`${buf.label} is not host-visible; upload it through a staging buffer`);
    if (offset + data.byteLength > buf.size) throw new RangeError(`${buf.label}: write of ${data.byteLength} bytes at ${offset} exceeds ${buf.size}`);
    new Uint8Array(koffi.view(buf.mapped + BigInt(offset), data.byteLength)).set(data);
  }

  /** Reads bytes from a host-visible buffer into `dst`. */
  read(buf: GpuBuffer, dst: Uint8Array, offset = 0): Uint8Array {
    if (buf.mapped === null) throw new Error(`${buf.label} is not host-visible; copy it to a staging buffer first`);
    if (offset + dst.byteLength > buf.size) throw new RangeError(`${buf.label}: read of ${dst.byteLength} bytes at ${offset} exceeds ${buf.size}`);
    dst.set(new Uint8Array(koffi.view(buf.mapped + BigInt(offset), dst.byteLength)));
    return dst;
  }

  /** A zero-copy view of a host-visible buffer's bytes (valid until the allocator is destroyed). */
  view(buf: GpuBuffer, offset = 0, length = buf.size - offset): Uint8Array {
    if (buf.mapped === null) throw new Error(`${buf.label} is not host-visible`);
    return new Uint8Array(koffi.view(buf.mapped + BigInt(offset), length));
  }

  /** Releases a buffer; its range of the block is reused by later allocations. */
  free(buf: GpuBuffer): void {
    const entry = this.live.get(buf.handle);
    if (entry === undefined) return;
    this.live.delete(buf.handle);
    release(entry.block, entry.offset, entry.bytes);
    this.device.bufferDestroyed(buf.handle);
    vk().vkDestroyBuffer(this.device.handle, buf.handle, null);
    const u = this.heapUsage(buf.heap);
    u.bytes -= buf.size;
    u.buffers -= 1;
  }

  destroy(): void {
    const api = vk();
    for (const { buffer } of this.live.values()) api.vkDestroyBuffer(this.device.handle, buffer.handle, null);
    this.live.clear();
    for (const b of this.blocks) {
      if (b.mapped !== null) api.vkUnmapMemory(this.device.handle, b.memory);
      api.vkFreeMemory(this.device.handle, b.memory, null);
    }
    this.blocks.length = 0;
  }
}
