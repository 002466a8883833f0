/**
 * A Vulkan device ready for compute: instance, chosen physical device, logical device, one compute
 * queue, a command pool, and one record of what the device offers (DeviceInfo). Kernels and tile
 * sizes are chosen from DeviceInfo once, at start-up.
 */
import {
  CooperativeMatrixFeatures,
  CooperativeMatrixProperties,
  GetCooperativeMatrixProperties,
  DriverProperties,
  IntegerDotProductFeatures,
  Maintenance3Properties,
  MemoryBudgetProperties,
  SubgroupProperties,
  SubgroupSizeControlFeatures,
  SubgroupSizeControlProperties,
  Vulkan11Features,
  Vulkan12Features,
  VK,
  VulkanError,
  check,
  create,
  koffi,
  vk,
  type Handle,
} from './ffi.js';
import { VALIDATION_LAYER, installMessenger, validationAvailable, validationRequested } from './validation.js';

export interface MemoryHeapInfo {
  readonly index: number;
  readonly size: number;
  readonly deviceLocal: boolean;
  /** From VK_EXT_memory_budget when the driver has it: what this process may still use. */
  readonly budget: number | null;
  readonly usage: number | null;
}

export interface MemoryTypeInfo {
  readonly index: number;
  readonly heap: number;
  readonly deviceLocal: boolean;
  readonly hostVisible: boolean;
  readonly hostCoherent: boolean;
  readonly hostCached: boolean;
}

/** A component type of VK_KHR_cooperative_matrix; 'other' for one unicorn does not name (bf16, fp8 from later extensions). */
export type CoopMatType = (typeof VK.COMPONENT_TYPE)[number] | 'other';

/** One cooperative-matrix shape: C[m x n] (+)= A[m x k] B[k x n], with the component types of each. */
export interface CoopMatShape {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: CoopMatType;
  readonly b: CoopMatType;
  readonly c: CoopMatType;
  readonly result: CoopMatType;
}

export interface DeviceInfo {
  readonly index: number;
  readonly name: string;
  readonly type: (typeof VK.PHYSICAL_DEVICE_TYPE)[number];
  readonly vendorId: number;
  readonly deviceId: number;
  readonly apiVersion: string;
  readonly driverName: string;
  readonly driverInfo: string;
  /** The subgroup size compute pipelines run at unless they ask for another (subgroupSizes). */
  readonly subgroupSize: number;
  /**
   * VK_EXT_subgroup_size_control for compute, when the device has it: the sizes a pipeline may ask
   * for (requiredSubgroupSize, powers of two from min to max) and whether it may also require full
   * subgroups. null: pipelines run at subgroupSize.
   */
  readonly subgroupSizes: { readonly min: number; readonly max: number; readonly fullSubgroups: boolean } | null;
  readonly subgroupArithmetic: boolean;
  readonly shaderFloat16: boolean;
  readonly shaderInt8: boolean;
  readonly storage8Bit: boolean;
  readonly storage16Bit: boolean;
  /**
   * VK_KHR_cooperative_matrix usable for unicorn's kernels: the extension with its feature, the Vulkan
   * memory model with device scope and fp16 arithmetic (enabled when present; UNICORN_NO_COOPMAT=1 turns it off).
   */
  readonly cooperativeMatrix: boolean;
  /** The subgroup-scope shapes the device reports (empty without cooperativeMatrix). */
  readonly coopMatShapes: readonly CoopMatShape[];
  /** VK_KHR_shader_integer_dot_product (packed 4 x 8-bit dot products), enabled when present. */
  readonly integerDotProduct: boolean;
  readonly memoryBudgetExt: boolean;
  readonly maxStorageBufferRange: number;
  readonly maxMemoryAllocationSize: number;
  readonly maxMemoryAllocationCount: number;
  readonly maxComputeSharedMemorySize: number;
  readonly maxComputeWorkGroupCount: readonly number[];
  readonly maxComputeWorkGroupInvocations: number;
  readonly maxPushConstantsSize: number;
  readonly minStorageBufferOffsetAlignment: number;
  readonly timestampPeriodNs: number;
  readonly heaps: readonly MemoryHeapInfo[];
  readonly memoryTypes: readonly MemoryTypeInfo[];
  readonly computeQueueFamily: number;
}

const version = (v: number) => `${v >>> 22}.${(v >>> 12) & 0x3ff}.${v & 0xfff}`;
const toNum = (v: unknown) => Number(v as number | bigint);

let instance: Handle | undefined;
let validationActive = false;

/** Whether the Khronos validation layer is checking this process's Vulkan calls. */
export function validationEnabled(): boolean {
  return validationActive;
}

/** The process-wide Vulkan instance (created on first use). */
export function vulkanInstance(): Handle {
  if (instance !== undefined) return instance;
  const api = vk();
  const v: [number] = [0];
  check(api.vkEnumerateInstanceVersion(v) as number, 'vkEnumerateInstanceVersion');
  if (v[0] < VK.API_VERSION_1_2) {
    throw new VulkanError(`the Vulkan loader is version ${version(v[0])}; unicorn needs Vulkan 1.2`, undefined, {
      hint: 'update libvulkan1 and your GPU driver',
    });
  }
  const validate = validationRequested() && validationAvailable();
  const layers = validate ? [VALIDATION_LAYER] : [];
  const extensions = validate ? ['VK_EXT_debug_utils'] : [];
  instance = create('vkCreateInstance', (out) =>
    api.vkCreateInstance(
      {
        sType: VK.ST_INSTANCE_CREATE_INFO,
        pNext: null,
        flags: 0,
        pApplicationInfo: {
          sType: VK.ST_APPLICATION_INFO,
          pNext: null,
          pApplicationName: 'unicorn',
          applicationVersion: 1,
          pEngineName: 'unicorn',
          engineVersion: 1,
          apiVersion: VK.API_VERSION_1_2,
        },
        enabledLayerCount: layers.length,
        ppEnabledLayerNames: layers,
        enabledExtensionCount: extensions.length,
        ppEnabledExtensionNames: extensions,
      },
      null,
      out,
    ),
  );
  if (validate) installMessenger(instance);
  validationActive = validate;
  return instance;
}

function physicalDevices(): Handle[] {
  const api = vk();
  const inst = vulkanInstance();
  const count: [number] = [0];
  check(api.vkEnumeratePhysicalDevices(inst, count, null) as number, 'vkEnumeratePhysicalDevices');
  if (count[0] === 0) return [];
  const out: (Handle | null)[] = new Array<Handle | null>(count[0]).fill(null);
  check(api.vkEnumeratePhysicalDevices(inst, count, out) as number, 'vkEnumeratePhysicalDevices', [5]);
  return out.slice(0, count[0]) as Handle[];
}

function extensions(pd: Handle): Set<string> {
  const api = vk();
  const count: [number] = [0];
  check(api.vkEnumerateDeviceExtensionProperties(pd, null, count, null) as number, 'vkEnumerateDeviceExtensionProperties');
  const props = new Array(count[0]).fill(null).map(() => ({}));
  check(api.vkEnumerateDeviceExtensionProperties(pd, null, count, props) as number, 'vkEnumerateDeviceExtensionProperties', [5]);
  return new Set((props as { extensionName: string }[]).map((p) => p.extensionName));
}

/** Reads everything unicorn needs to know about one physical device. */
function describe(pd: Handle, index: number): DeviceInfo {
  const api = vk();
  const exts = extensions(pd);
  // Properties, with subgroup, driver and maintenance-3 structs chained behind.
  const sub = koffi.alloc(SubgroupProperties, 1);
  const drv = koffi.alloc(DriverProperties, 1);
  const m3 = koffi.alloc(Maintenance3Properties, 1);
  const sizeExt = exts.has('VK_EXT_subgroup_size_control');
  const ssc = koffi.alloc(SubgroupSizeControlProperties, 1);
  koffi.encode(ssc, SubgroupSizeControlProperties, {
    sType: VK.ST_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES,
    pNext: null,
    minSubgroupSize: 0,
    maxSubgroupSize: 0,
    maxComputeWorkgroupSubgroups: 0,
    requiredSubgroupSizeStages: 0,
  });
  koffi.encode(m3, Maintenance3Properties, {
    sType: VK.ST_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
    pNext: sizeExt ? ssc : null,
    maxPerSetDescriptors: 0,
    maxMemoryAllocationSize: 0,
  });
  koffi.encode(drv, DriverProperties, {
    sType: VK.ST_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
    pNext: m3,
    driverID: 0,
    driverName: '',
    driverInfo: '',
    conformanceVersion: [0, 0, 0, 0],
  });
  koffi.encode(sub, SubgroupProperties, {
    sType: VK.ST_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
    pNext: drv,
    subgroupSize: 0,
    supportedStages: 0,
    supportedOperations: 0,
    quadOperationsInAllStages: 0,
  });
  const props2 = { sType: VK.ST_PHYSICAL_DEVICE_PROPERTIES_2, pNext: sub, properties: {} } as Record<string, unknown>;
  api.vkGetPhysicalDeviceProperties2(pd, props2);
  const p = props2['properties'] as Record<string, unknown>;
  const limits = p['limits'] as Record<string, unknown>;
  const subgroup = koffi.decode(sub, SubgroupProperties) as { subgroupSize: number; supportedOperations: number };
  const driver = koffi.decode(drv, DriverProperties) as { driverName: string; driverInfo: string };
  const maint3 = koffi.decode(m3, Maintenance3Properties) as { maxMemoryAllocationSize: bigint | number };
  const sizes = koffi.decode(ssc, SubgroupSizeControlProperties) as { minSubgroupSize: number; maxSubgroupSize: number; requiredSubgroupSizeStages: number };
  for (const a of [sub, drv, m3, ssc]) koffi.free(a);

  // Features: 1.1 (16-bit storage), 1.2 (float16, int8, 8-bit storage), integer dot product.
  const f11 = koffi.alloc(Vulkan11Features, 1);
  const f12 = koffi.alloc(Vulkan12Features, 1);
  const fdot = koffi.alloc(IntegerDotProductFeatures, 1);
  const fsize = koffi.alloc(SubgroupSizeControlFeatures, 1);
  const dotExt = exts.has('VK_KHR_shader_integer_dot_product');
  const coopExt = exts.has('VK_KHR_cooperative_matrix');
  const fcoop = koffi.alloc(CooperativeMatrixFeatures, 1);
  koffi.encode(fcoop, CooperativeMatrixFeatures, {
    sType: VK.ST_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR,
    pNext: null,
    cooperativeMatrix: 0,
    cooperativeMatrixRobustBufferAccess: 0,
  });
  koffi.encode(fsize, SubgroupSizeControlFeatures, {
    sType: VK.ST_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
    pNext: coopExt ? fcoop : null,
    subgroupSizeControl: 0,
    computeFullSubgroups: 0,
  });
  koffi.encode(fdot, IntegerDotProductFeatures, {
    sType: VK.ST_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
    pNext: sizeExt ? fsize : null,
    shaderIntegerDotProduct: 0,
  });
  koffi.encode(f12, Vulkan12Features, { sType: VK.ST_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, pNext: dotExt ? fdot : fsize });
  koffi.encode(f11, Vulkan11Features, { sType: VK.ST_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, pNext: f12 });
  api.vkGetPhysicalDeviceFeatures2(pd, { sType: VK.ST_PHYSICAL_DEVICE_FEATURES_2, pNext: f11, features: new Array(55).fill(0) });
  const feat11 = koffi.decode(f11, Vulkan11Features) as Record<string, number>;
  const feat12 = koffi.decode(f12, Vulkan12Features) as Record<string, number>;
  const featDot = koffi.decode(fdot, IntegerDotProductFeatures) as { shaderIntegerDotProduct: number };
  const featSize = koffi.decode(fsize, SubgroupSizeControlFeatures) as { subgroupSizeControl: number; computeFullSubgroups: number };
  const featCoop = koffi.decode(fcoop, CooperativeMatrixFeatures) as { cooperativeMatrix: number };
  for (const a of [f11, f12, fdot, fsize, fcoop]) koffi.free(a);
  const cooperativeMatrix =
    coopExt &&
    featCoop.cooperativeMatrix === 1 &&
    feat12['vulkanMemoryModel'] === 1 &&
    feat12['vulkanMemoryModelDeviceScope'] === 1 &&
    feat12['shaderFloat16'] === 1 &&
    !coopCrashes(driver.driverName, subgroup.subgroupSize) &&
    process.env['UNICORN_NO_COOPMAT'] !== '1';
  const sizeControl =
    sizeExt && featSize.subgroupSizeControl === 1 && (sizes.requiredSubgroupSizeStages & VK.SHADER_STAGE_COMPUTE) !== 0 && sizes.minSubgroupSize > 0;

  // Memory, with the budget when VK_EXT_memory_budget is there.
  const budgetExt = exts.has('VK_EXT_memory_budget');
  const budget = koffi.alloc(MemoryBudgetProperties, 1);
  koffi.encode(budget, MemoryBudgetProperties, {
    sType: VK.ST_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT,
    pNext: null,
    heapBudget: new Array(16).fill(0),
    heapUsage: new Array(16).fill(0),
  });
  const mem2 = { sType: VK.ST_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, pNext: budgetExt ? budget : null, memoryProperties: {} } as Record<string, unknown>;
  api.vkGetPhysicalDeviceMemoryProperties2(pd, mem2);
  const mem = mem2['memoryProperties'] as {
    memoryTypeCount: number;
    memoryTypes: { propertyFlags: number; heapIndex: number }[];
    memoryHeapCount: number;
    memoryHeaps: { size: bigint | number; flags: number }[];
  };
  const b = koffi.decode(budget, MemoryBudgetProperties) as { heapBudget: (bigint | number)[]; heapUsage: (bigint | number)[] };
  koffi.free(budget);

  const qcount: [number] = [0];
  api.vkGetPhysicalDeviceQueueFamilyProperties(pd, qcount, null);
  const qprops = new Array(qcount[0]).fill(null).map(() => ({}));
  api.vkGetPhysicalDeviceQueueFamilyProperties(pd, qcount, qprops);
  const families = qprops as { queueFlags: number }[];
  // Prefer a compute family without graphics (async compute), else any with compute.
  let computeQueueFamily = families.findIndex((q) => (q.queueFlags & VK.QUEUE_COMPUTE_BIT) !== 0 && (q.queueFlags & 0x1) === 0);
  if (computeQueueFamily < 0) computeQueueFamily = families.findIndex((q) => (q.queueFlags & VK.QUEUE_COMPUTE_BIT) !== 0);

  const maxAlloc = toNum(maint3.maxMemoryAllocationSize);
  return lowerLimits({
    index,
    name: p['deviceName'] as string,
    type: VK.PHYSICAL_DEVICE_TYPE[p['deviceType'] as number] ?? 'other',
    vendorId: p['vendorID'] as number,
    deviceId: p['deviceID'] as number,
    apiVersion: version(p['apiVersion'] as number),
    driverName: driver.driverName,
    driverInfo: driver.driverInfo,
    subgroupSize: subgroup.subgroupSize,
    subgroupSizes: sizeControl ? { min: sizes.minSubgroupSize, max: sizes.maxSubgroupSize, fullSubgroups: featSize.computeFullSubgroups === 1 } : null,
    subgroupArithmetic: (subgroup.supportedOperations & VK.SUBGROUP_FEATURE_ARITHMETIC) !== 0,
    shaderFloat16: feat12['shaderFloat16'] === 1,
    shaderInt8: feat12['shaderInt8'] === 1,
    storage8Bit: feat12['storageBuffer8BitAccess'] === 1,
    storage16Bit: feat11['storageBuffer16BitAccess'] === 1,
    cooperativeMatrix,
    coopMatShapes: cooperativeMatrix ? coopMatShapes(pd) : [],
    integerDotProduct: dotExt && featDot.shaderIntegerDotProduct === 1 && process.env['UNICORN_NO_INTEGER_DOT'] !== '1',
    memoryBudgetExt: budgetExt,
    maxStorageBufferRange: limits['maxStorageBufferRange'] as number,
    maxMemoryAllocationSize: maxAlloc > 0 ? maxAlloc : 2 ** 31,
    maxMemoryAllocationCount: limits['maxMemoryAllocationCount'] as number,
    maxComputeSharedMemorySize: limits['maxComputeSharedMemorySize'] as number,
    maxComputeWorkGroupCount: Array.from(limits['maxComputeWorkGroupCount'] as ArrayLike<number>),
    maxComputeWorkGroupInvocations: limits['maxComputeWorkGroupInvocations'] as number,
    maxPushConstantsSize: limits['maxPushConstantsSize'] as number,
    minStorageBufferOffsetAlignment: toNum(limits['minStorageBufferOffsetAlignment']),
    timestampPeriodNs: limits['timestampPeriod'] as number,
    heaps: mem.memoryHeaps.slice(0, mem.memoryHeapCount).map((h, i) => ({
      index: i,
      size: toNum(h.size),
      deviceLocal: (h.flags & VK.MEMORY_HEAP_DEVICE_LOCAL) !== 0,
      budget: budgetExt ? toNum(b.heapBudget[i]) : null,
      usage: budgetExt ? toNum(b.heapUsage[i]) : null,
    })),
    memoryTypes: mem.memoryTypes.slice(0, mem.memoryTypeCount).map((t, i) => ({
      index: i,
      heap: t.heapIndex,
      deviceLocal: (t.propertyFlags & VK.MEMORY_PROPERTY_DEVICE_LOCAL) !== 0,
      hostVisible: (t.propertyFlags & VK.MEMORY_PROPERTY_HOST_VISIBLE) !== 0,
      hostCoherent: (t.propertyFlags & VK.MEMORY_PROPERTY_HOST_COHERENT) !== 0,
      hostCached: (t.propertyFlags & VK.MEMORY_PROPERTY_HOST_CACHED) !== 0,
    })),
    computeQueueFamily,
  });
}

/**
 * A driver known to advertise cooperative matrices it cannot compile: Mesa 26.1's lavapipe reports them
 * at subgroups of 16 (LP_NATIVE_VECTOR_WIDTH=512) too, and segfaults creating any pipeline that uses
 * them there (shaders/peak.comp's COOP variant, a loop of coopMatMulAdd, is enough; at 8 it is right).
 * Only its subgroups of 8 are used.
 */
export function coopCrashes(driverName: string, subgroupSize: number): boolean {
  return driverName === 'llvmpipe' && subgroupSize !== 8;
}

/** The subgroup-scope cooperative-matrix shapes of a device with VK_KHR_cooperative_matrix. */
function coopMatShapes(pd: Handle): CoopMatShape[] {
  const fn = vk().vkGetInstanceProcAddr(vulkanInstance(), 'vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR') as bigint | null;
  if (fn === null || fn === 0n) return [];
  const count: [number] = [0];
  check(koffi.call(fn, GetCooperativeMatrixProperties, pd, count, null) as number, 'vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR');
  const n = count[0];
  const size = koffi.sizeof(CooperativeMatrixProperties);
  const buf = Buffer.alloc(n * size);
  for (let i = 0; i < n; i++) {
    const one = Buffer.alloc(size);
    koffi.encode(one, CooperativeMatrixProperties, {
      sType: VK.ST_COOPERATIVE_MATRIX_PROPERTIES_KHR,
      pNext: null,
      MSize: 0,
      NSize: 0,
      KSize: 0,
      AType: 0,
      BType: 0,
      CType: 0,
      ResultType: 0,
      saturatingAccumulation: 0,
      scope: 0,
    });
    one.copy(buf, i * size);
  }
  check(koffi.call(fn, GetCooperativeMatrixProperties, pd, count, buf) as number, 'vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR', [5]);
  const type = (t: number): CoopMatType => VK.COMPONENT_TYPE[t] ?? 'other';
  const out: CoopMatShape[] = [];
  for (let i = 0; i < count[0]; i++) {
    const p = koffi.decode(buf.subarray(i * size), CooperativeMatrixProperties) as Record<string, number>;
    if (p['scope'] !== VK.SCOPE_SUBGROUP_KHR || p['saturatingAccumulation'] === 1) continue;
    out.push({
      m: p['MSize']!,
      n: p['NSize']!,
      k: p['KSize']!,
      a: type(p['AType']!),
      b: type(p['BType']!),
      c: type(p['CType']!),
      result: type(p['ResultType']!),
    });
  }
  return out;
}

/** The device limits UNICORN_DEVICE_LIMITS may lower. */
const LOWERABLE = ['maxStorageBufferRange', 'maxMemoryAllocationSize'] as const;

/**
 * Applies UNICORN_DEVICE_LIMITS (e.g. `maxStorageBufferRange=65536,maxMemoryAllocationSize=131072`):
 * limits lowered below what the driver reports, so that a test model's small tensors take the paths a
 * 27B's take on a real GPU (a table split over allocations, matrices bound in row ranges). Only
 * lowers; an unknown name or a value that is not a positive integer is an error.
 */
export function lowerLimits(info: DeviceInfo, text = process.env['UNICORN_DEVICE_LIMITS']): DeviceInfo {
  if (text === undefined || text.trim() === '') return info;
  const out: Record<string, unknown> = { ...info };
  for (const part of text.split(',')) {
    const [name, value] = part.split('=').map((x) => x.trim());
    const n = Number(value);
    if (!(LOWERABLE as readonly string[]).includes(name ?? '') || !Number.isSafeInteger(n) || n <= 0) {
      throw new VulkanError(`UNICORN_DEVICE_LIMITS: '${part}' is not <limit>=<positive integer> (limits: ${LOWERABLE.join(', ')})`);
    }
    out[name!] = Math.min(n, info[name as (typeof LOWERABLE)[number]]);
  }
  return out as unknown as DeviceInfo;
}

/** Every Vulkan device the loader sees, described (unicorn doctor). */
export function listDevices(): DeviceInfo[] {
  return physicalDevices().map((pd, i) => describe(pd, i));
}

const TYPE_RANK: Record<DeviceInfo['type'], number> = { 'discrete-gpu': 0, 'integrated-gpu': 1, 'virtual-gpu': 2, other: 3, cpu: 4 };

/**
 * Picks a device: by index or by a case-insensitive part of its name when asked (`--gpu`, or the
 * UNICORN_GPU environment variable), else a real GPU before a CPU driver such as lavapipe.
 */
export function chooseDevice(devices: readonly DeviceInfo[], want?: string): DeviceInfo {
  const usable = devices.filter((d) => d.computeQueueFamily >= 0);
  if (usable.length === 0) {
    throw new VulkanError('no Vulkan device with a compute queue was found', undefined, {
      hint: "install a Vulkan driver: `sudo apt install mesa-vulkan-drivers` (AMD, Intel, and the lavapipe CPU driver), or your vendor's driver; `unicorn doctor` shows what the loader sees",
    });
  }
  const asked = want ?? process.env['UNICORN_GPU'];
  if (asked !== undefined && asked !== '') {
    const byIndex = /^\d+$/.test(asked) ? usable.find((d) => d.index === Number(asked)) : undefined;
    const found = byIndex ?? usable.find((d) => d.name.toLowerCase().includes(asked.toLowerCase()));
    if (found === undefined) {
      throw new VulkanError(`no Vulkan device matches "${asked}"; found: ${usable.map((d) => `${d.index}: ${d.name}`).join(', ')}`);
    }
    return found;
  }
  return [...usable].sort((a, b) => TYPE_RANK[a.type] - TYPE_RANK[b.type] || a.index - b.index)[0]!;
}

/** A logical device with one compute queue and a command pool. */
export class Device {
  readonly info: DeviceInfo;
  readonly physical: Handle;
  readonly handle: Handle;
  readonly queue: Handle;
  readonly commandPool: Handle;
  private destroyed = false;
  private readonly cleanups: (() => void)[] = [];
  private readonly bufferListeners: ((buffer: Handle) => void)[] = [];

  private constructor(info: DeviceInfo, physical: Handle) {
    const api = vk();
    this.info = info;
    this.physical = physical;
    const priorities = new Float32Array([1]);
    // Enabled: integer dot product (INT8 and INT4 kernels use it) and subgroup size control (kernels
    // that ask for a size), when the device has them.
    const extensions = [
      ...(info.integerDotProduct ? ['VK_KHR_shader_integer_dot_product'] : []),
      ...(info.subgroupSizes !== null ? ['VK_EXT_subgroup_size_control'] : []),
      ...(info.cooperativeMatrix ? ['VK_KHR_cooperative_matrix'] : []),
    ];
    // Cooperative matrices (the prefill matmul): the feature, the Vulkan memory model (glslang's SPIR-V
    // for barrier() names device scope) and fp16 arithmetic.
    const coop = koffi.alloc(CooperativeMatrixFeatures, 1);
    koffi.encode(coop, CooperativeMatrixFeatures, {
      sType: VK.ST_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR,
      pNext: null,
      cooperativeMatrix: 1,
      cooperativeMatrixRobustBufferAccess: 0,
    });
    const f12 = koffi.alloc(Vulkan12Features, 1);
    koffi.encode(f12, Vulkan12Features, {
      sType: VK.ST_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
      pNext: coop,
      shaderFloat16: 1,
      vulkanMemoryModel: 1,
      vulkanMemoryModelDeviceScope: 1,
    });
    const size = koffi.alloc(SubgroupSizeControlFeatures, 1);
    koffi.encode(size, SubgroupSizeControlFeatures, {
      sType: VK.ST_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
      pNext: info.cooperativeMatrix ? f12 : null,
      subgroupSizeControl: 1,
      computeFullSubgroups: info.subgroupSizes?.fullSubgroups === true ? 1 : 0,
    });
    const dot = koffi.alloc(IntegerDotProductFeatures, 1);
    koffi.encode(dot, IntegerDotProductFeatures, {
      sType: VK.ST_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
      pNext: info.subgroupSizes !== null ? size : info.cooperativeMatrix ? f12 : null,
      shaderIntegerDotProduct: 1,
    });
    const chain = info.integerDotProduct ? dot : info.subgroupSizes !== null ? size : info.cooperativeMatrix ? f12 : null;
    this.handle = create('vkCreateDevice', (out) =>
      api.vkCreateDevice(
        physical,
        {
          sType: VK.ST_DEVICE_CREATE_INFO,
          pNext: chain,
          flags: 0,
          queueCreateInfoCount: 1,
          pQueueCreateInfos: [
            {
              sType: VK.ST_DEVICE_QUEUE_CREATE_INFO,
              pNext: null,
              flags: 0,
              queueFamilyIndex: info.computeQueueFamily,
              queueCount: 1,
              pQueuePriorities: priorities,
            },
          ],
          enabledLayerCount: 0,
          ppEnabledLayerNames: null,
          enabledExtensionCount: extensions.length,
          ppEnabledExtensionNames: extensions,
          pEnabledFeatures: null,
        },
        null,
        out,
      ),
    );
    for (const a of [dot, size, coop, f12]) koffi.free(a);
    const q: [Handle | null] = [null];
    api.vkGetDeviceQueue(this.handle, info.computeQueueFamily, 0, q);
    this.queue = q[0]!;
    this.commandPool = create('vkCreateCommandPool', (out) =>
      api.vkCreateCommandPool(
        this.handle,
        {
          sType: VK.ST_COMMAND_POOL_CREATE_INFO,
          pNext: null,
          flags: VK.COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER,
          queueFamilyIndex: info.computeQueueFamily,
        },
        null,
        out,
      ),
    );
  }

  /** Opens the chosen device (see chooseDevice). */
  static open(want?: string): Device {
    const pds = physicalDevices();
    const infos = pds.map((pd, i) => describe(pd, i));
    const info = chooseDevice(infos, want);
    return new Device(info, pds[info.index]!);
  }

  /** Registers a destructor run (in reverse order) by destroy(), before the device itself. */
  onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Registers a callback told of every buffer about to be destroyed (kernels drop descriptor sets naming it). */
  onBufferDestroyed(fn: (buffer: Handle) => void): void {
    this.bufferListeners.push(fn);
  }

  /** Called by the allocator before it destroys a buffer. */
  bufferDestroyed(buffer: Handle): void {
    for (const fn of this.bufferListeners) fn(buffer);
  }

  waitIdle(): void {
    check(vk().vkDeviceWaitIdle(this.handle) as number, 'vkDeviceWaitIdle');
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const api = vk();
    api.vkDeviceWaitIdle(this.handle);
    for (const fn of this.cleanups.reverse()) fn();
    api.vkDestroyCommandPool(this.handle, this.commandPool, null);
    api.vkDestroyDevice(this.handle, null);
  }
}
