/**
 * Compute kernels: a SPIR-V variant from shaders/spv, its descriptor layout (N storage buffers),
 * push constants and specialization constants, created once per device and looked up by key.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Device } from './device.js';
import { VK, VulkanError, check, create, vk, type Handle } from './ffi.js';
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
}

export class Kernel {
  readonly spec: KernelSpec;
  readonly pipeline: Handle;
  readonly layout: Handle;
  readonly setLayout: Handle;
  readonly pool: Handle;

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
    this.pipeline = create(`vkCreateComputePipelines(${spec.variant})`, (out) => api.vkCreateComputePipelines(d, null, 1, {
      sType: VK.ST_COMPUTE_PIPELINE_CREATE_INFO, pNext: null, flags: 0,
      stage: {
        sType: VK.ST_PIPELINE_SHADER_STAGE_CREATE_INFO, pNext: null, flags: 0, stage: VK.SHADER_STAGE_COMPUTE, module, pName: 'main',
        pSpecializationInfo: { mapEntryCount: spec.spec.length, pMapEntries: spec.spec.map((_, i) => ({ constantID: i, offset: i * 4, size: 4 })), dataSize: specData.byteLength, pData: specData },
      },
      layout: this.layout, basePipelineHandle: null, basePipelineIndex: -1,
    }, null, out));
    api.vkDestroyShaderModule(d, module, null);
    this.pool = create('vkCreateDescriptorPool', (out) => api.vkCreateDescriptorPool(d, {
      sType: VK.ST_DESCRIPTOR_POOL_CREATE_INFO, pNext: null, flags: 0, maxSets,
      poolSizeCount: 1, pPoolSizes: [{ type: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: maxSets * spec.bindings }],
    }, null, out));
    device.onDestroy(() => this.destroy());
  }

  /** A descriptor set binding each buffer range (offset and size in bytes) to 0, 1, 2, ... */
  bind(ranges: readonly { buffer: GpuBuffer; offset?: number; size?: number }[]): Handle {
    const api = vk();
    const out: [Handle | null] = [null];
    check(api.vkAllocateDescriptorSets(this.device.handle, { sType: VK.ST_DESCRIPTOR_SET_ALLOCATE_INFO, pNext: null, descriptorPool: this.pool, descriptorSetCount: 1, pSetLayouts: [this.setLayout] }, out) as number, `vkAllocateDescriptorSets(${this.spec.variant})`);
    const set = out[0]!;
    const max = this.device.info.maxStorageBufferRange;
    const writes = ranges.map((r, i) => {
      const offset = r.offset ?? 0;
      const size = r.size ?? r.buffer.size - offset;
      if (size > max) throw new VulkanError(`${r.buffer.label}: a ${size}-byte range is over this device's maxStorageBufferRange (${max}); the kernel must split it`);
      if (offset % this.device.info.minStorageBufferOffsetAlignment !== 0) throw new VulkanError(`${r.buffer.label}: offset ${offset} is not aligned to ${this.device.info.minStorageBufferOffsetAlignment}`);
      return { sType: VK.ST_WRITE_DESCRIPTOR_SET, pNext: null, dstSet: set, dstBinding: i, dstArrayElement: 0, descriptorCount: 1, descriptorType: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, pImageInfo: null, pBufferInfo: [{ buffer: r.buffer.handle, offset, range: size }], pTexelBufferView: null };
    });
    api.vkUpdateDescriptorSets(this.device.handle, writes.length, writes, 0, null);
    return set;
  }

  private destroy(): void {
    const api = vk();
    const d = this.device.handle;
    api.vkDestroyDescriptorPool(d, this.pool, null);
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
  const key = `${spec.variant}/${spec.bindings}/${spec.pushBytes}/${spec.spec.join(',')}`;
  let k = kernels.get(key);
  if (k === undefined) {
    k = new Kernel(device, spec, 4096);
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

