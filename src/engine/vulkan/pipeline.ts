/**
 * Compute kernels: a SPIR-V variant from shaders/spv, its descriptor layout (N storage buffers),
 * push constants and specialization constants, created once per device and looked up by key.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Device } from './device.js';
import { RequiredSubgroupSizeCreateInfo, VK, VulkanError, check, create, koffi, vk, type Handle } from './ffi.js';
import type { GpuBuffer } from './memory.js';

const SPV_DIR = fileURLToPath(new URL('../../../../shaders/spv/', import.meta.url));

export interface KernelSpec {
  /** Variant name in shaders/variants.json, e.g. matvec_q4. */
  readonly variant: string;
  readonly bindings: number;
  /** Bytes of push constants (u32 words x 4). */
  readonly pushBytes: number;
  /** Specialization constants by id (u32 values); id 0 is the workgroup size. */
  readonly spec: readonly number[];
  /**
   * The subgroup size to run at (VK_EXT_subgroup_size_control; kernels/subgroups.ts decides), with
   * full subgroups where the device allows and the workgroup is a multiple of it. Absent: the driver's.
   */
  readonly subgroupSize?: number;
}

export class Kernel {
  readonly spec: KernelSpec;
  readonly pipeline: Handle;
  readonly layout: Handle;
  readonly setLayout: Handle;
  /** Descriptor pools, a new one when the last is full; sets are freed when a buffer they name is. */
  private readonly pools: Handle[] = [];
  private readonly maxSets: number;
  /** Descriptor sets by the ranges they bind: binding the same ranges again returns the same set. */
  private readonly sets = new Map<string, { set: Handle; pool: Handle; buffers: Handle[] }>();
  /** What each set binds, by buffer label (Commands' trace). */
  private readonly described = new Map<Handle, string>();
  private readonly keysByBuffer = new Map<Handle, Set<string>>();

  constructor(readonly device: Device, spec: KernelSpec, maxSets = 256) {
    const api = vk();
    const d = device.handle;
    this.spec = spec;
    const file = `${SPV_DIR}${spec.variant}.spv`;
    if (!fs.existsSync(file)) throw new VulkanError(`shader ${spec.variant} is missing (${file})`, undefined, { hint: 'reinstall unicorn, or run `node scripts/build-shaders.mjs` in a checkout' });
    const code = fs.readFileSync(file);
    const module = create(`vkCreateShaderModule(${spec.variant})`, (out) => api.vkCreateShaderModule(d, { sType: VK.ST_SHADER_MODULE_CREATE_INFO, pNext: null, flags: 0, codeSize: code.byteLength, pCode: code }, null, out));
    this.setLayout = create('vkCreateDescriptorSetLayout', (out) => api.vkCreateDescriptorSetLayout(d, {
      sType: VK.ST_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, pNext: null, flags: 0, bindingCount: spec.bindings,
      pBindings: Array.from({ length: spec.bindings }, (_, i) => ({ binding: i, descriptorType: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: 1, stageFlags: VK.SHADER_STAGE_COMPUTE, pImmutableSamplers: null })),
    }, null, out));
    this.layout = create('vkCreatePipelineLayout', (out) => api.vkCreatePipelineLayout(d, {
      sType: VK.ST_PIPELINE_LAYOUT_CREATE_INFO, pNext: null, flags: 0, setLayoutCount: 1, pSetLayouts: [this.setLayout],
      pushConstantRangeCount: spec.pushBytes > 0 ? 1 : 0, pPushConstantRanges: spec.pushBytes > 0 ? [{ stageFlags: VK.SHADER_STAGE_COMPUTE, offset: 0, size: spec.pushBytes }] : null,
    }, null, out));
    const specData = new Uint32Array(spec.spec);
    const sizes = device.info.subgroupSizes;
    const size = spec.subgroupSize;
    if (size !== undefined && (sizes === null || size < sizes.min || size > sizes.max || (size & (size - 1)) !== 0)) {
      throw new VulkanError(`${spec.variant}: subgroup size ${size} asked for, ${device.info.name} runs ${sizes === null ? `only ${device.info.subgroupSize}` : `${sizes.min} to ${sizes.max}`}`);
    }
    const required = size === undefined ? null : koffi.alloc(RequiredSubgroupSizeCreateInfo, 1);
    if (required !== null) koffi.encode(required, RequiredSubgroupSizeCreateInfo, { sType: VK.ST_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO, pNext: null, requiredSubgroupSize: size! });
    const full = size !== undefined && sizes?.fullSubgroups === true && (spec.spec[0] ?? 0) % size === 0;
    this.pipeline = create(`vkCreateComputePipelines(${spec.variant})`, (out) => api.vkCreateComputePipelines(d, null, 1, {
      sType: VK.ST_COMPUTE_PIPELINE_CREATE_INFO, pNext: null, flags: 0,
      stage: {
        sType: VK.ST_PIPELINE_SHADER_STAGE_CREATE_INFO, pNext: required, flags: full ? VK.PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS : 0, stage: VK.SHADER_STAGE_COMPUTE, module, pName: 'main',
        pSpecializationInfo: { mapEntryCount: spec.spec.length, pMapEntries: spec.spec.map((_, i) => ({ constantID: i, offset: i * 4, size: 4 })), dataSize: specData.byteLength, pData: specData },
      },
      layout: this.layout, basePipelineHandle: null, basePipelineIndex: -1,
    }, null, out));
    if (required !== null) koffi.free(required);
    api.vkDestroyShaderModule(d, module, null);
    this.maxSets = maxSets;
    device.onDestroy(() => this.destroy());
    device.onBufferDestroyed((buffer) => this.release(buffer));
  }

  private newPool(): Handle {
    const pool = create('vkCreateDescriptorPool', (out) => vk().vkCreateDescriptorPool(this.device.handle, {
      sType: VK.ST_DESCRIPTOR_POOL_CREATE_INFO, pNext: null, flags: VK.DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET, maxSets: this.maxSets,
      poolSizeCount: 1, pPoolSizes: [{ type: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: this.maxSets * this.spec.bindings }],
    }, null, out));
    this.pools.push(pool);
    return pool;
  }

  /** Allocates one set from the first pool with room, newest first; a new pool when all are full. */
  private allocate(): { set: Handle; pool: Handle } {
    const api = vk();
    const tryPool = (pool: Handle): Handle | null => {
      const out: [Handle | null] = [null];
      const r = api.vkAllocateDescriptorSets(this.device.handle, { sType: VK.ST_DESCRIPTOR_SET_ALLOCATE_INFO, pNext: null, descriptorPool: pool, descriptorSetCount: 1, pSetLayouts: [this.setLayout] }, out) as number;
      if (r === VK.ERROR_OUT_OF_POOL_MEMORY || r === VK.ERROR_FRAGMENTED_POOL) return null;
      check(r, `vkAllocateDescriptorSets(${this.spec.variant})`);
      return out[0]!;
    };
    for (let i = this.pools.length - 1; i >= 0; i--) {
      const set = tryPool(this.pools[i]!);
      if (set !== null) return { set, pool: this.pools[i]! };
    }
    const pool = this.newPool();
    const set = tryPool(pool);
    if (set === null) throw new VulkanError(`vkAllocateDescriptorSets(${this.spec.variant}): a fresh pool has no room`);
    return { set, pool };
  }

  /**
   * A descriptor set binding each buffer range (offset and size in bytes) to 0, 1, 2, ...; the same
   * ranges give the same set, so recording a step again allocates nothing.
   */
  bind(ranges: readonly { buffer: GpuBuffer; offset?: number; size?: number }[]): Handle {
    const max = this.device.info.maxStorageBufferRange;
    const resolved = ranges.map((r) => {
      const offset = r.offset ?? 0;
      const size = r.size ?? r.buffer.size - offset;
      if (size > max) throw new VulkanError(`${r.buffer.label}: a ${size}-byte range is over this device's maxStorageBufferRange (${max}); the kernel must split it`);
      if (offset % this.device.info.minStorageBufferOffsetAlignment !== 0) throw new VulkanError(`${r.buffer.label}: offset ${offset} is not aligned to ${this.device.info.minStorageBufferOffsetAlignment}`);
      return { buffer: r.buffer.handle, offset, size };
    });
    const key = resolved.map((r) => `${r.buffer}:${r.offset}:${r.size}`).join('/');
    const cached = this.sets.get(key);
    if (cached !== undefined) return cached.set;
    const { set, pool } = this.allocate();
    const writes = resolved.map((r, i) => ({ sType: VK.ST_WRITE_DESCRIPTOR_SET, pNext: null, dstSet: set, dstBinding: i, dstArrayElement: 0, descriptorCount: 1, descriptorType: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, pImageInfo: null, pBufferInfo: [{ buffer: r.buffer, offset: r.offset, range: r.size }], pTexelBufferView: null }));
    vk().vkUpdateDescriptorSets(this.device.handle, writes.length, writes, 0, null);
    this.described.set(set, ranges.map((r, i) => `${r.buffer.label}@${resolved[i]!.offset}+${resolved[i]!.size}`).join(', '));
    const buffers = [...new Set(resolved.map((r) => r.buffer))];
    this.sets.set(key, { set, pool, buffers });
    for (const b of buffers) {
      let keys = this.keysByBuffer.get(b);
      if (keys === undefined) this.keysByBuffer.set(b, (keys = new Set()));
      keys.add(key);
    }
    return set;
  }

  /** The buffer ranges a set binds, by label, in binding order (Commands' trace). */
  describe(set: Handle): string {
    return this.described.get(set) ?? '?';
  }

  /** Number of live descriptor sets (tests). */
  get liveSets(): number {
    return this.sets.size;
  }

  /** Frees every set that names a buffer about to be destroyed. */
  private release(buffer: Handle): void {
    const keys = this.keysByBuffer.get(buffer);
    if (keys === undefined) return;
    this.keysByBuffer.delete(buffer);
    for (const key of keys) {
      const entry = this.sets.get(key);
      if (entry === undefined) continue;
      this.sets.delete(key);
      this.described.delete(entry.set);
      for (const b of entry.buffers) if (b !== buffer) this.keysByBuffer.get(b)?.delete(key);
      vk().vkFreeDescriptorSets(this.device.handle, entry.pool, 1, [entry.set]);
    }
  }

  private destroy(): void {
    const api = vk();
    const d = this.device.handle;
    for (const pool of this.pools) api.vkDestroyDescriptorPool(d, pool, null);
    api.vkDestroyPipeline(d, this.pipeline, null);
    api.vkDestroyPipelineLayout(d, this.layout, null);
    api.vkDestroyDescriptorSetLayout(d, this.setLayout, null);
  }
}

const cache = new WeakMap<Device, Map<string, Kernel>>();

/**
 * The kernel for a spec on a device: created on first use, then looked up by its variant, bindings,
 * push-constant size and specialization constants. Every host-side kernel wrapper goes through here.
 */
export function kernelFor(device: Device, spec: KernelSpec): Kernel {
  let kernels = cache.get(device);
  if (kernels === undefined) {
    kernels = new Map();
    cache.set(device, kernels);
  }
  const key = `${spec.variant}/${spec.bindings}/${spec.pushBytes}/${spec.spec.join(',')}/${spec.subgroupSize ?? ''}`;
  let k = kernels.get(key);
  if (k === undefined) {
    k = new Kernel(device, spec);
    kernels.set(key, k);
  }
  return k;
}

/** Splits a workgroup count into a 2-D grid within the device's per-dimension limit. */
export function grid(groups: number, maxX: number): [number, number] {
  if (groups <= maxX) return [groups, 1];
  const y = Math.ceil(groups / maxX);
  return [Math.ceil(groups / y), y];
}

