/**
 * Compute kernels: a variant of an entry of the kernel table (kernels/table.ts) as a pipeline: its
 * SPIR-V from shaders/spv, a descriptor layout of the entry's storage buffers, its push-constant
 * range and its specialization constants, created once per device and looked up by variant and
 * constants. Buffers, push constants and spec constants are given by the entry's names.
 */
import { UnicornError } from '../errors.js';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type AxisValues, type Axes, KERNELS, type KernelDef, type PushType, variantOf } from '../kernels/table.js';
import type { Device } from './device.js';
import { RequiredSubgroupSizeCreateInfo, VK, VulkanError, check, create, koffi, vk, type Handle } from './ffi.js';
import type { GpuBuffer } from './memory.js';

const SPV_DIR = fileURLToPath(new URL('../../../../shaders/spv/', import.meta.url));

/** A range of a buffer to bind (offset and size in bytes; the rest of the buffer by default), or the whole buffer. */
export type Binding = GpuBuffer | { readonly buffer: GpuBuffer; readonly offset?: number; readonly size?: number };

/** A value for each of an entry's specialization constants (booleans as 1 and 0). */
export type SpecValues<S extends string> = { readonly [K in S]: number | boolean };

/** The kernel type of a table entry: its bindings and push fields by name. */
export type KernelOf<D> = D extends KernelDef<Axes, infer B, infer P, string> ? Kernel<B, P> : never;

/** The table's name of an entry, by identity (a variant without axes is named as its kernel). */
const NAMES = new Map<KernelDef, string>((Object.entries(KERNELS) as [string, KernelDef][]).map(([name, def]) => [def, name]));

export class Kernel<B extends string = string, P extends string = string> {
  /** The kernel's entry in the table, and its name there. */
  readonly def: KernelDef;
  readonly name: string;
  /** The variant's name: shaders/spv/<variant>.spv. */
  readonly variant: string;
  /** The specialization constants' values in constant_id order (what the pipeline was made with). */
  readonly constants: readonly number[];
  /**
   * The subgroup size it runs at (VK_EXT_subgroup_size_control; kernels/subgroups.ts decides), with
   * full subgroups where the device allows and the workgroup is a multiple of it. Absent: the driver's.
   */
  readonly subgroupSize: number | undefined;
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

  constructor(
    readonly device: Device,
    def: KernelDef,
    variant: string,
    constants: readonly number[],
    subgroupSize?: number,
    maxSets = 256,
  ) {
    const api = vk();
    const d = device.handle;
    this.def = def;
    this.name = NAMES.get(def) ?? def.source;
    this.variant = variant;
    this.constants = constants;
    this.subgroupSize = subgroupSize;
    const bindings = def.bindings.length;
    const pushBytes = 4 * Object.keys(def.push).length;
    const file = `${SPV_DIR}${variant}.spv`;
    if (!fs.existsSync(file))
      throw new UnicornError(`shader ${variant} is missing (${file})`, {
        hint: 'reinstall unicorn, or run `npx tsc -p tsconfig.json && node scripts/build-shaders.mjs` in a checkout',
      });
    const code = fs.readFileSync(file);
    const module = create(`vkCreateShaderModule(${variant})`, (out) =>
      api.vkCreateShaderModule(d, { sType: VK.ST_SHADER_MODULE_CREATE_INFO, pNext: null, flags: 0, codeSize: code.byteLength, pCode: code }, null, out),
    );
    this.setLayout = create('vkCreateDescriptorSetLayout', (out) =>
      api.vkCreateDescriptorSetLayout(
        d,
        {
          sType: VK.ST_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
          pNext: null,
          flags: 0,
          bindingCount: bindings,
          pBindings: Array.from({ length: bindings }, (_, i) => ({
            binding: i,
            descriptorType: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER,
            descriptorCount: 1,
            stageFlags: VK.SHADER_STAGE_COMPUTE,
            pImmutableSamplers: null,
          })),
        },
        null,
        out,
      ),
    );
    this.layout = create('vkCreatePipelineLayout', (out) =>
      api.vkCreatePipelineLayout(
        d,
        {
          sType: VK.ST_PIPELINE_LAYOUT_CREATE_INFO,
          pNext: null,
          flags: 0,
          setLayoutCount: 1,
          pSetLayouts: [this.setLayout],
          pushConstantRangeCount: pushBytes > 0 ? 1 : 0,
          pPushConstantRanges: pushBytes > 0 ? [{ stageFlags: VK.SHADER_STAGE_COMPUTE, offset: 0, size: pushBytes }] : null,
        },
        null,
        out,
      ),
    );
    const specData = new Uint32Array(constants);
    const sizes = device.info.subgroupSizes;
    const size = subgroupSize;
    if (size !== undefined && (sizes === null || size < sizes.min || size > sizes.max || (size & (size - 1)) !== 0)) {
      throw new Error(
        `${variant}: subgroup size ${size} asked for, ${device.info.name} runs ${sizes === null ? `only ${device.info.subgroupSize}` : `${sizes.min} to ${sizes.max}`}`,
      );
    }
    const required = size === undefined ? null : koffi.alloc(RequiredSubgroupSizeCreateInfo, 1);
    if (required !== null)
      koffi.encode(required, RequiredSubgroupSizeCreateInfo, {
        sType: VK.ST_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        pNext: null,
        requiredSubgroupSize: size!,
      });
    // The workgroup size is constant 0 where the kernel takes it as one (local_size_x_id = 0).
    const workgroup = def.spec[0] === 'workgroup' ? constants[0]! : 0;
    const full = size !== undefined && sizes?.fullSubgroups === true && workgroup % size === 0;
    this.pipeline = create(`vkCreateComputePipelines(${variant})`, (out) =>
      api.vkCreateComputePipelines(
        d,
        null,
        1,
        {
          sType: VK.ST_COMPUTE_PIPELINE_CREATE_INFO,
          pNext: null,
          flags: 0,
          stage: {
            sType: VK.ST_PIPELINE_SHADER_STAGE_CREATE_INFO,
            pNext: required,
            flags: full ? VK.PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS : 0,
            stage: VK.SHADER_STAGE_COMPUTE,
            module,
            pName: 'main',
            pSpecializationInfo: {
              mapEntryCount: constants.length,
              pMapEntries: constants.map((_, i) => ({ constantID: i, offset: i * 4, size: 4 })),
              dataSize: specData.byteLength,
              pData: specData,
            },
          },
          layout: this.layout,
          basePipelineHandle: null,
          basePipelineIndex: -1,
        },
        null,
        out,
      ),
    );
    if (required !== null) koffi.free(required);
    api.vkDestroyShaderModule(d, module, null);
    this.maxSets = maxSets;
    device.onDestroy(() => this.destroy());
    device.onBufferDestroyed((buffer) => this.release(buffer));
  }

  /** The push constants, by name, as the words the kernel reads (f32 fields as their bits). */
  push(values: { readonly [K in P]: number }): Uint32Array {
    const fields = Object.entries(this.def.push) as [P, PushType][];
    const words = new Uint32Array(fields.length);
    const floats = new Float32Array(words.buffer);
    fields.forEach(([name, type], i) => {
      const v = values[name];
      if (typeof v !== 'number') throw new Error(`${this.variant}: push constant ${name} is missing`);
      if (type === 'f32') floats[i] = v;
      else words[i] = v;
    });
    return words;
  }

  private newPool(): Handle {
    const pool = create('vkCreateDescriptorPool', (out) =>
      vk().vkCreateDescriptorPool(
        this.device.handle,
        {
          sType: VK.ST_DESCRIPTOR_POOL_CREATE_INFO,
          pNext: null,
          flags: VK.DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET,
          maxSets: this.maxSets,
          poolSizeCount: 1,
          pPoolSizes: [{ type: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: this.maxSets * this.def.bindings.length }],
        },
        null,
        out,
      ),
    );
    this.pools.push(pool);
    return pool;
  }

  /** Allocates one set from the first pool with room, newest first; a new pool when all are full. */
  private allocate(): { set: Handle; pool: Handle } {
    const api = vk();
    const tryPool = (pool: Handle): Handle | null => {
      const out: [Handle | null] = [null];
      const r = api.vkAllocateDescriptorSets(
        this.device.handle,
        { sType: VK.ST_DESCRIPTOR_SET_ALLOCATE_INFO, pNext: null, descriptorPool: pool, descriptorSetCount: 1, pSetLayouts: [this.setLayout] },
        out,
      ) as number;
      if (r === VK.ERROR_OUT_OF_POOL_MEMORY || r === VK.ERROR_FRAGMENTED_POOL) return null;
      check(r, `vkAllocateDescriptorSets(${this.variant})`);
      return out[0]!;
    };
    for (let i = this.pools.length - 1; i >= 0; i--) {
      const set = tryPool(this.pools[i]!);
      if (set !== null) return { set, pool: this.pools[i]! };
    }
    const pool = this.newPool();
    const set = tryPool(pool);
    if (set === null) throw new VulkanError(`vkAllocateDescriptorSets(${this.variant}): a fresh pool has no room`);
    return { set, pool };
  }

  /**
   * A descriptor set binding each of the kernel's buffers, by name, to a buffer or a range of one
   * (offset and size in bytes); the same ranges give the same set, so recording a step again
   * allocates nothing.
   */
  bind(bindings: { readonly [K in B]: Binding }): Handle {
    const ranges = this.def.bindings.map((name) => {
      const b = (bindings as Record<string, Binding | undefined>)[name];
      if (b === undefined) throw new Error(`${this.variant}: no buffer bound to ${name}`);
      return 'buffer' in b ? b : { buffer: b };
    });
    const max = this.device.info.maxStorageBufferRange;
    const resolved = ranges.map((r) => {
      const offset = r.offset ?? 0;
      const size = r.size ?? r.buffer.size - offset;
      if (size > max) throw new Error(`${r.buffer.label}: a ${size}-byte range is over this device's maxStorageBufferRange (${max}); the kernel must split it`);
      if (offset % this.device.info.minStorageBufferOffsetAlignment !== 0)
        throw new Error(`${r.buffer.label}: offset ${offset} is not aligned to ${this.device.info.minStorageBufferOffsetAlignment}`);
      return { buffer: r.buffer.handle, offset, size };
    });
    const key = resolved.map((r) => `${r.buffer}:${r.offset}:${r.size}`).join('/');
    const cached = this.sets.get(key);
    if (cached !== undefined) return cached.set;
    const { set, pool } = this.allocate();
    const writes = resolved.map((r, i) => ({
      sType: VK.ST_WRITE_DESCRIPTOR_SET,
      pNext: null,
      dstSet: set,
      dstBinding: i,
      dstArrayElement: 0,
      descriptorCount: 1,
      descriptorType: VK.DESCRIPTOR_TYPE_STORAGE_BUFFER,
      pImageInfo: null,
      pBufferInfo: [{ buffer: r.buffer, offset: r.offset, range: r.size }],
      pTexelBufferView: null,
    }));
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
 * The kernel of a table entry (kernels/table.ts) on a device, for one value per variant axis and a
 * value per specialization constant, by name; at a required subgroup size if given. Created on first
 * use, then looked up by variant, constants and subgroup size. Every host-side kernel wrapper goes
 * through here.
 */
export function kernelFor<A extends Axes, B extends string, P extends string, S extends string>(
  device: Device,
  def: KernelDef<A, B, P, S>,
  axes: AxisValues<A>,
  spec: SpecValues<S>,
  opts: { subgroupSize?: number } = {},
): Kernel<B, P> {
  const name = NAMES.get(def as KernelDef);
  if (name === undefined) throw new Error(`kernelFor: a kernel that is not in the table (${def.source})`);
  for (const [axis, values] of Object.entries(def.axes ?? {})) {
    const v = (axes as Record<string, string>)[axis];
    if (v === undefined || !values.includes(v)) throw new Error(`${name}: no variant for ${axis} ${String(v)} (there are ${values.join(', ')})`);
  }
  const variant = variantOf(name, def, axes).name;
  const constants = def.spec.map((c) => {
    const v = spec[c];
    if (typeof v !== 'number' && typeof v !== 'boolean') throw new Error(`${variant}: specialization constant ${c} is missing`);
    return typeof v === 'boolean' ? (v ? 1 : 0) : v;
  });
  let kernels = cache.get(device);
  if (kernels === undefined) {
    kernels = new Map();
    cache.set(device, kernels);
  }
  const key = `${variant}/${constants.join(',')}/${opts.subgroupSize ?? ''}`;
  let k = kernels.get(key);
  if (k === undefined) {
    k = new Kernel(device, def as KernelDef, variant, constants, opts.subgroupSize);
    kernels.set(key, k);
  }
  return k as unknown as Kernel<B, P>;
}

/** Splits a workgroup count into a 2-D grid within the device's per-dimension limit. */
export function grid(groups: number, maxX: number): [number, number] {
  if (groups <= maxX) return [groups, 1];
  const y = Math.ceil(groups / maxX);
  return [Math.ceil(groups / y), y];
}
