/**
 * The Vulkan C API through koffi: the structs and functions unicorn uses, declared once.
 * Handles (dispatchable or not) are `void *` and arrive as BigInt; out-handles are `_Out_ void **`
 * filled through a one-element array. Every VkResult goes through check().
 */
import { createRequire } from 'node:module';
import { UnicornError } from '../errors.js';

// koffi is CommonJS; createRequire keeps this file ESM without an interop flag.
type Koffi = typeof import('koffi');
const koffi = createRequire(import.meta.url)('koffi') as Koffi;
export { koffi };

/** A Vulkan call failed, or Vulkan is missing. The message names the call and the VkResult. */
export class VulkanError extends UnicornError {
  readonly result: number | undefined;
  constructor(message: string, result?: number, options?: { hint?: string }) {
    super(message, options);
    this.result = result;
  }
}

const RESULT_NAMES: Record<number, string> = {
  1: 'VK_NOT_READY',
  2: 'VK_TIMEOUT',
  3: 'VK_EVENT_SET',
  4: 'VK_EVENT_RESET',
  5: 'VK_INCOMPLETE',
  [-1]: 'VK_ERROR_OUT_OF_HOST_MEMORY',
  [-2]: 'VK_ERROR_OUT_OF_DEVICE_MEMORY',
  [-3]: 'VK_ERROR_INITIALIZATION_FAILED',
  [-4]: 'VK_ERROR_DEVICE_LOST',
  [-5]: 'VK_ERROR_MEMORY_MAP_FAILED',
  [-6]: 'VK_ERROR_LAYER_NOT_PRESENT',
  [-7]: 'VK_ERROR_EXTENSION_NOT_PRESENT',
  [-8]: 'VK_ERROR_FEATURE_NOT_PRESENT',
  [-9]: 'VK_ERROR_INCOMPATIBLE_DRIVER',
  [-10]: 'VK_ERROR_TOO_MANY_OBJECTS',
  [-11]: 'VK_ERROR_FORMAT_NOT_SUPPORTED',
  [-12]: 'VK_ERROR_FRAGMENTED_POOL',
  [-13]: 'VK_ERROR_UNKNOWN',
  [-1000069000]: 'VK_ERROR_OUT_OF_POOL_MEMORY',
  [-1000072003]: 'VK_ERROR_INVALID_EXTERNAL_HANDLE',
  [-1000161000]: 'VK_ERROR_FRAGMENTATION',
  [-1000257000]: 'VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS',
  [-1000012000]: 'VK_ERROR_INVALID_SHADER_NV',
};

export function resultName(r: number): string {
  return RESULT_NAMES[r] ?? `VkResult ${r}`;
}

/** Throws a VulkanError naming the call unless `r` is VK_SUCCESS (or one of `ok`). */
export function check(r: number, call: string, ok: readonly number[] = []): number {
  if (r !== 0 && !ok.includes(r)) throw new VulkanError(`${call} failed: ${resultName(r)}`, r);
  return r;
}

export type Handle = bigint;

// ---- constants -------------------------------------------------------------------------------
export const VK = {
  API_VERSION_1_2: (1 << 22) | (2 << 12),
  ST_APPLICATION_INFO: 0,
  ST_INSTANCE_CREATE_INFO: 1,
  ST_DEVICE_QUEUE_CREATE_INFO: 2,
  ST_DEVICE_CREATE_INFO: 3,
  ST_SUBMIT_INFO: 4,
  ST_MEMORY_ALLOCATE_INFO: 5,
  ST_FENCE_CREATE_INFO: 8,
  ST_QUERY_POOL_CREATE_INFO: 11,
  ST_BUFFER_CREATE_INFO: 12,
  ST_SHADER_MODULE_CREATE_INFO: 16,
  ST_PIPELINE_SHADER_STAGE_CREATE_INFO: 18,
  ST_COMPUTE_PIPELINE_CREATE_INFO: 29,
  ST_PIPELINE_LAYOUT_CREATE_INFO: 30,
  ST_DESCRIPTOR_SET_LAYOUT_CREATE_INFO: 32,
  ST_DESCRIPTOR_POOL_CREATE_INFO: 33,
  ST_DESCRIPTOR_SET_ALLOCATE_INFO: 34,
  ST_WRITE_DESCRIPTOR_SET: 35,
  ST_COMMAND_POOL_CREATE_INFO: 39,
  ST_COMMAND_BUFFER_ALLOCATE_INFO: 40,
  ST_COMMAND_BUFFER_BEGIN_INFO: 42,
  ST_MEMORY_BARRIER: 46,
  ST_PHYSICAL_DEVICE_PROPERTIES_2: 1000059001,
  ST_PHYSICAL_DEVICE_FEATURES_2: 1000059000,
  ST_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2: 1000059006,
  ST_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES: 1000094000,
  ST_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES: 49,
  ST_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: 51,
  ST_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT: 1000237000,
  ST_PHYSICAL_DEVICE_DRIVER_PROPERTIES: 1000196000,
  ST_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES: 1000168000,
  ST_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES: 1000280000,
  ST_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES: 1000225000,
  ST_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO: 1000225001,
  ST_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES: 1000225002,
  ST_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR: 1000506000,
  ST_COOPERATIVE_MATRIX_PROPERTIES_KHR: 1000506001,
  /** VkComponentTypeKHR, by value. */
  COMPONENT_TYPE: ['f16', 'f32', 'f64', 's8', 's16', 's32', 's64', 'u8', 'u16', 'u32', 'u64'] as const,
  SCOPE_SUBGROUP_KHR: 3,
  PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS: 0x2,
  QUEUE_COMPUTE_BIT: 0x2,
  QUEUE_TRANSFER_BIT: 0x4,
  BUFFER_USAGE_TRANSFER_SRC: 0x1,
  BUFFER_USAGE_TRANSFER_DST: 0x2,
  BUFFER_USAGE_STORAGE: 0x20,
  MEMORY_PROPERTY_DEVICE_LOCAL: 0x1,
  MEMORY_PROPERTY_HOST_VISIBLE: 0x2,
  MEMORY_PROPERTY_HOST_COHERENT: 0x4,
  MEMORY_PROPERTY_HOST_CACHED: 0x8,
  MEMORY_HEAP_DEVICE_LOCAL: 0x1,
  DESCRIPTOR_TYPE_STORAGE_BUFFER: 7,
  SHADER_STAGE_COMPUTE: 0x20,
  PIPELINE_BIND_POINT_COMPUTE: 1,
  COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER: 0x2,
  DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET: 0x1,
  ERROR_OUT_OF_POOL_MEMORY: -1000069000,
  ERROR_FRAGMENTED_POOL: -12,
  COMMAND_BUFFER_LEVEL_PRIMARY: 0,
  COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT: 0x1,
  COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE: 0x4,
  PIPELINE_STAGE_TRANSFER: 0x1000,
  PIPELINE_STAGE_COMPUTE_SHADER: 0x800,
  PIPELINE_STAGE_HOST: 0x4000,
  ACCESS_SHADER_READ: 0x20,
  ACCESS_SHADER_WRITE: 0x40,
  ACCESS_TRANSFER_READ: 0x800,
  ACCESS_TRANSFER_WRITE: 0x1000,
  ACCESS_HOST_READ: 0x2000,
  ACCESS_HOST_WRITE: 0x4000,
  QUERY_TYPE_TIMESTAMP: 2,
  QUERY_RESULT_64: 0x1,
  QUERY_RESULT_WAIT: 0x2,
  PIPELINE_STAGE_BOTTOM_OF_PIPE: 0x2000,
  WHOLE_SIZE: 0xffffffffffffffffn,
  PHYSICAL_DEVICE_TYPE: ['other', 'integrated-gpu', 'discrete-gpu', 'virtual-gpu', 'cpu'] as const,
  SUBGROUP_FEATURE_ARITHMETIC: 0x4,
  SUBGROUP_FEATURE_SHUFFLE: 0x10,
} as const;

// ---- structs ---------------------------------------------------------------------------------
const u32 = 'uint32_t';
const u64 = 'uint64_t';
const vkBool = 'uint32_t';
const ptr = 'void *';

export const ApplicationInfo = koffi.struct('VkApplicationInfo', {
  sType: 'int',
  pNext: ptr,
  pApplicationName: 'const char *',
  applicationVersion: u32,
  pEngineName: 'const char *',
  engineVersion: u32,
  apiVersion: u32,
});
export const InstanceCreateInfo = koffi.struct('VkInstanceCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  pApplicationInfo: koffi.pointer(ApplicationInfo),
  enabledLayerCount: u32,
  ppEnabledLayerNames: 'const char **',
  enabledExtensionCount: u32,
  ppEnabledExtensionNames: 'const char **',
});

const limitsU32Block1 = [
  'maxImageDimension1D',
  'maxImageDimension2D',
  'maxImageDimension3D',
  'maxImageDimensionCube',
  'maxImageArrayLayers',
  'maxTexelBufferElements',
  'maxUniformBufferRange',
  'maxStorageBufferRange',
  'maxPushConstantsSize',
  'maxMemoryAllocationCount',
  'maxSamplerAllocationCount',
];
const limitsU32Block2 = [
  'maxBoundDescriptorSets',
  'maxPerStageDescriptorSamplers',
  'maxPerStageDescriptorUniformBuffers',
  'maxPerStageDescriptorStorageBuffers',
  'maxPerStageDescriptorSampledImages',
  'maxPerStageDescriptorStorageImages',
  'maxPerStageDescriptorInputAttachments',
  'maxPerStageResources',
  'maxDescriptorSetSamplers',
  'maxDescriptorSetUniformBuffers',
  'maxDescriptorSetUniformBuffersDynamic',
  'maxDescriptorSetStorageBuffers',
  'maxDescriptorSetStorageBuffersDynamic',
  'maxDescriptorSetSampledImages',
  'maxDescriptorSetStorageImages',
  'maxDescriptorSetInputAttachments',
  'maxVertexInputAttributes',
  'maxVertexInputBindings',
  'maxVertexInputAttributeOffset',
  'maxVertexInputBindingStride',
  'maxVertexOutputComponents',
  'maxTessellationGenerationLevel',
  'maxTessellationPatchSize',
  'maxTessellationControlPerVertexInputComponents',
  'maxTessellationControlPerVertexOutputComponents',
  'maxTessellationControlPerPatchOutputComponents',
  'maxTessellationControlTotalOutputComponents',
  'maxTessellationEvaluationInputComponents',
  'maxTessellationEvaluationOutputComponents',
  'maxGeometryShaderInvocations',
  'maxGeometryInputComponents',
  'maxGeometryOutputComponents',
  'maxGeometryOutputVertices',
  'maxGeometryTotalOutputComponents',
  'maxFragmentInputComponents',
  'maxFragmentOutputAttachments',
  'maxFragmentDualSrcAttachments',
  'maxFragmentCombinedOutputResources',
  'maxComputeSharedMemorySize',
];
export const PhysicalDeviceLimits = koffi.struct('VkPhysicalDeviceLimits', {
  ...Object.fromEntries(limitsU32Block1.map((n) => [n, u32])),
  bufferImageGranularity: u64,
  sparseAddressSpaceSize: u64,
  ...Object.fromEntries(limitsU32Block2.map((n) => [n, u32])),
  maxComputeWorkGroupCount: koffi.array(u32, 3),
  maxComputeWorkGroupInvocations: u32,
  maxComputeWorkGroupSize: koffi.array(u32, 3),
  subPixelPrecisionBits: u32,
  subTexelPrecisionBits: u32,
  mipmapPrecisionBits: u32,
  maxDrawIndexedIndexValue: u32,
  maxDrawIndirectCount: u32,
  maxSamplerLodBias: 'float',
  maxSamplerAnisotropy: 'float',
  maxViewports: u32,
  maxViewportDimensions: koffi.array(u32, 2),
  viewportBoundsRange: koffi.array('float', 2),
  viewportSubPixelBits: u32,
  minMemoryMapAlignment: 'size_t',
  minTexelBufferOffsetAlignment: u64,
  minUniformBufferOffsetAlignment: u64,
  minStorageBufferOffsetAlignment: u64,
  minTexelOffset: 'int32_t',
  maxTexelOffset: u32,
  minTexelGatherOffset: 'int32_t',
  maxTexelGatherOffset: u32,
  minInterpolationOffset: 'float',
  maxInterpolationOffset: 'float',
  subPixelInterpolationOffsetBits: u32,
  maxFramebufferWidth: u32,
  maxFramebufferHeight: u32,
  maxFramebufferLayers: u32,
  framebufferColorSampleCounts: u32,
  framebufferDepthSampleCounts: u32,
  framebufferStencilSampleCounts: u32,
  framebufferNoAttachmentsSampleCounts: u32,
  maxColorAttachments: u32,
  sampledImageColorSampleCounts: u32,
  sampledImageIntegerSampleCounts: u32,
  sampledImageDepthSampleCounts: u32,
  sampledImageStencilSampleCounts: u32,
  storageImageSampleCounts: u32,
  maxSampleMaskWords: u32,
  timestampComputeAndGraphics: vkBool,
  timestampPeriod: 'float',
  maxClipDistances: u32,
  maxCullDistances: u32,
  maxCombinedClipAndCullDistances: u32,
  discreteQueuePriorities: u32,
  pointSizeRange: koffi.array('float', 2),
  lineWidthRange: koffi.array('float', 2),
  pointSizeGranularity: 'float',
  lineWidthGranularity: 'float',
  strictLines: vkBool,
  standardSampleLocations: vkBool,
  optimalBufferCopyOffsetAlignment: u64,
  optimalBufferCopyRowPitchAlignment: u64,
  nonCoherentAtomSize: u64,
});
export const PhysicalDeviceProperties = koffi.struct('VkPhysicalDeviceProperties', {
  apiVersion: u32,
  driverVersion: u32,
  vendorID: u32,
  deviceID: u32,
  deviceType: 'int',
  deviceName: koffi.array('char', 256, 'String'),
  pipelineCacheUUID: koffi.array('uint8_t', 16),
  limits: PhysicalDeviceLimits,
  sparseProperties: koffi.array(vkBool, 5),
});
export const PhysicalDeviceProperties2 = koffi.struct('VkPhysicalDeviceProperties2', { sType: 'int', pNext: ptr, properties: PhysicalDeviceProperties });
export const SubgroupProperties = koffi.struct('VkPhysicalDeviceSubgroupProperties', {
  sType: 'int',
  pNext: ptr,
  subgroupSize: u32,
  supportedStages: u32,
  supportedOperations: u32,
  quadOperationsInAllStages: vkBool,
});
export const DriverProperties = koffi.struct('VkPhysicalDeviceDriverProperties', {
  sType: 'int',
  pNext: ptr,
  driverID: 'int',
  driverName: koffi.array('char', 256, 'String'),
  driverInfo: koffi.array('char', 256, 'String'),
  conformanceVersion: koffi.array('uint8_t', 4),
});
export const Maintenance3Properties = koffi.struct('VkPhysicalDeviceMaintenance3Properties', {
  sType: 'int',
  pNext: ptr,
  maxPerSetDescriptors: u32,
  maxMemoryAllocationSize: u64,
});
const vk12FeatureNames = [
  'samplerMirrorClampToEdge',
  'drawIndirectCount',
  'storageBuffer8BitAccess',
  'uniformAndStorageBuffer8BitAccess',
  'storagePushConstant8',
  'shaderBufferInt64Atomics',
  'shaderSharedInt64Atomics',
  'shaderFloat16',
  'shaderInt8',
  'descriptorIndexing',
  'shaderInputAttachmentArrayDynamicIndexing',
  'shaderUniformTexelBufferArrayDynamicIndexing',
  'shaderStorageTexelBufferArrayDynamicIndexing',
  'shaderUniformBufferArrayNonUniformIndexing',
  'shaderSampledImageArrayNonUniformIndexing',
  'shaderStorageBufferArrayNonUniformIndexing',
  'shaderStorageImageArrayNonUniformIndexing',
  'shaderInputAttachmentArrayNonUniformIndexing',
  'shaderUniformTexelBufferArrayNonUniformIndexing',
  'shaderStorageTexelBufferArrayNonUniformIndexing',
  'descriptorBindingUniformBufferUpdateAfterBind',
  'descriptorBindingSampledImageUpdateAfterBind',
  'descriptorBindingStorageImageUpdateAfterBind',
  'descriptorBindingStorageBufferUpdateAfterBind',
  'descriptorBindingUniformTexelBufferUpdateAfterBind',
  'descriptorBindingStorageTexelBufferUpdateAfterBind',
  'descriptorBindingUpdateUnusedWhilePending',
  'descriptorBindingPartiallyBound',
  'descriptorBindingVariableDescriptorCount',
  'runtimeDescriptorArray',
  'samplerFilterMinmax',
  'scalarBlockLayout',
  'imagelessFramebuffer',
  'uniformBufferStandardLayout',
  'shaderSubgroupExtendedTypes',
  'separateDepthStencilLayouts',
  'hostQueryReset',
  'timelineSemaphore',
  'bufferDeviceAddress',
  'bufferDeviceAddressCaptureReplay',
  'bufferDeviceAddressMultiDevice',
  'vulkanMemoryModel',
  'vulkanMemoryModelDeviceScope',
  'vulkanMemoryModelAvailabilityVisibilityChains',
  'shaderOutputViewportIndex',
  'shaderOutputLayer',
  'subgroupBroadcastDynamicId',
] as const;
export const Vulkan12Features = koffi.struct('VkPhysicalDeviceVulkan12Features', {
  sType: 'int',
  pNext: ptr,
  ...Object.fromEntries(vk12FeatureNames.map((n) => [n, vkBool])),
});
export const Vulkan11Features = koffi.struct('VkPhysicalDeviceVulkan11Features', {
  sType: 'int',
  pNext: ptr,
  storageBuffer16BitAccess: vkBool,
  uniformAndStorageBuffer16BitAccess: vkBool,
  storagePushConstant16: vkBool,
  storageInputOutput16: vkBool,
  multiview: vkBool,
  multiviewGeometryShader: vkBool,
  multiviewTessellationShader: vkBool,
  variablePointersStorageBuffer: vkBool,
  variablePointers: vkBool,
  protectedMemory: vkBool,
  samplerYcbcrConversion: vkBool,
  shaderDrawParameters: vkBool,
});
export const SubgroupSizeControlProperties = koffi.struct('VkPhysicalDeviceSubgroupSizeControlProperties', {
  sType: 'int',
  pNext: ptr,
  minSubgroupSize: u32,
  maxSubgroupSize: u32,
  maxComputeWorkgroupSubgroups: u32,
  requiredSubgroupSizeStages: u32,
});
export const SubgroupSizeControlFeatures = koffi.struct('VkPhysicalDeviceSubgroupSizeControlFeatures', {
  sType: 'int',
  pNext: ptr,
  subgroupSizeControl: vkBool,
  computeFullSubgroups: vkBool,
});
export const RequiredSubgroupSizeCreateInfo = koffi.struct('VkPipelineShaderStageRequiredSubgroupSizeCreateInfo', {
  sType: 'int',
  pNext: ptr,
  requiredSubgroupSize: u32,
});
export const IntegerDotProductFeatures = koffi.struct('VkPhysicalDeviceShaderIntegerDotProductFeatures', {
  sType: 'int',
  pNext: ptr,
  shaderIntegerDotProduct: vkBool,
});
export const CooperativeMatrixFeatures = koffi.struct('VkPhysicalDeviceCooperativeMatrixFeaturesKHR', {
  sType: 'int',
  pNext: ptr,
  cooperativeMatrix: vkBool,
  cooperativeMatrixRobustBufferAccess: vkBool,
});
export const CooperativeMatrixProperties = koffi.struct('VkCooperativeMatrixPropertiesKHR', {
  sType: 'int',
  pNext: ptr,
  MSize: u32,
  NSize: u32,
  KSize: u32,
  AType: 'int',
  BType: 'int',
  CType: 'int',
  ResultType: 'int',
  saturatingAccumulation: vkBool,
  scope: 'int',
});
/** An instance-level function of VK_KHR_cooperative_matrix, called through vkGetInstanceProcAddr. */
export const GetCooperativeMatrixProperties = koffi.proto(
  'int vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(void *pd, _Inout_ uint32_t *count, void *props)',
);
export const PhysicalDeviceFeatures2 = koffi.struct('VkPhysicalDeviceFeatures2', { sType: 'int', pNext: ptr, features: koffi.array(vkBool, 55) });
export const MemoryType = koffi.struct('VkMemoryType', { propertyFlags: u32, heapIndex: u32 });
export const MemoryHeap = koffi.struct('VkMemoryHeap', { size: u64, flags: u32 });
export const PhysicalDeviceMemoryProperties = koffi.struct('VkPhysicalDeviceMemoryProperties', {
  memoryTypeCount: u32,
  memoryTypes: koffi.array(MemoryType, 32),
  memoryHeapCount: u32,
  memoryHeaps: koffi.array(MemoryHeap, 16),
});
export const PhysicalDeviceMemoryProperties2 = koffi.struct('VkPhysicalDeviceMemoryProperties2', {
  sType: 'int',
  pNext: ptr,
  memoryProperties: PhysicalDeviceMemoryProperties,
});
export const MemoryBudgetProperties = koffi.struct('VkPhysicalDeviceMemoryBudgetPropertiesEXT', {
  sType: 'int',
  pNext: ptr,
  heapBudget: koffi.array(u64, 16),
  heapUsage: koffi.array(u64, 16),
});
export const QueueFamilyProperties = koffi.struct('VkQueueFamilyProperties', {
  queueFlags: u32,
  queueCount: u32,
  timestampValidBits: u32,
  minImageTransferGranularity: koffi.array(u32, 3),
});
export const ExtensionProperties = koffi.struct('VkExtensionProperties', { extensionName: koffi.array('char', 256, 'String'), specVersion: u32 });
export const DeviceQueueCreateInfo = koffi.struct('VkDeviceQueueCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  queueFamilyIndex: u32,
  queueCount: u32,
  pQueuePriorities: 'const float *',
});
export const DeviceCreateInfo = koffi.struct('VkDeviceCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  queueCreateInfoCount: u32,
  pQueueCreateInfos: koffi.pointer(DeviceQueueCreateInfo),
  enabledLayerCount: u32,
  ppEnabledLayerNames: 'const char **',
  enabledExtensionCount: u32,
  ppEnabledExtensionNames: 'const char **',
  pEnabledFeatures: ptr,
});
export const BufferCreateInfo = koffi.struct('VkBufferCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  size: u64,
  usage: u32,
  sharingMode: 'int',
  queueFamilyIndexCount: u32,
  pQueueFamilyIndices: 'const uint32_t *',
});
export const MemoryRequirements = koffi.struct('VkMemoryRequirements', { size: u64, alignment: u64, memoryTypeBits: u32 });
export const MemoryAllocateInfo = koffi.struct('VkMemoryAllocateInfo', { sType: 'int', pNext: ptr, allocationSize: u64, memoryTypeIndex: u32 });
export const ShaderModuleCreateInfo = koffi.struct('VkShaderModuleCreateInfo', { sType: 'int', pNext: ptr, flags: u32, codeSize: 'size_t', pCode: ptr });
export const DescriptorSetLayoutBinding = koffi.struct('VkDescriptorSetLayoutBinding', {
  binding: u32,
  descriptorType: 'int',
  descriptorCount: u32,
  stageFlags: u32,
  pImmutableSamplers: ptr,
});
export const DescriptorSetLayoutCreateInfo = koffi.struct('VkDescriptorSetLayoutCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  bindingCount: u32,
  pBindings: koffi.pointer(DescriptorSetLayoutBinding),
});
export const PushConstantRange = koffi.struct('VkPushConstantRange', { stageFlags: u32, offset: u32, size: u32 });
export const PipelineLayoutCreateInfo = koffi.struct('VkPipelineLayoutCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  setLayoutCount: u32,
  pSetLayouts: 'void **',
  pushConstantRangeCount: u32,
  pPushConstantRanges: koffi.pointer(PushConstantRange),
});
export const SpecializationMapEntry = koffi.struct('VkSpecializationMapEntry', { constantID: u32, offset: u32, size: 'size_t' });
export const SpecializationInfo = koffi.struct('VkSpecializationInfo', {
  mapEntryCount: u32,
  pMapEntries: koffi.pointer(SpecializationMapEntry),
  dataSize: 'size_t',
  pData: ptr,
});
export const PipelineShaderStageCreateInfo = koffi.struct('VkPipelineShaderStageCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  stage: u32,
  module: ptr,
  pName: 'const char *',
  pSpecializationInfo: koffi.pointer(SpecializationInfo),
});
export const ComputePipelineCreateInfo = koffi.struct('VkComputePipelineCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  stage: PipelineShaderStageCreateInfo,
  layout: ptr,
  basePipelineHandle: ptr,
  basePipelineIndex: 'int32_t',
});
export const DescriptorPoolSize = koffi.struct('VkDescriptorPoolSize', { type: 'int', descriptorCount: u32 });
export const DescriptorPoolCreateInfo = koffi.struct('VkDescriptorPoolCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  maxSets: u32,
  poolSizeCount: u32,
  pPoolSizes: koffi.pointer(DescriptorPoolSize),
});
export const DescriptorSetAllocateInfo = koffi.struct('VkDescriptorSetAllocateInfo', {
  sType: 'int',
  pNext: ptr,
  descriptorPool: ptr,
  descriptorSetCount: u32,
  pSetLayouts: 'void **',
});
export const DescriptorBufferInfo = koffi.struct('VkDescriptorBufferInfo', { buffer: ptr, offset: u64, range: u64 });
export const WriteDescriptorSet = koffi.struct('VkWriteDescriptorSet', {
  sType: 'int',
  pNext: ptr,
  dstSet: ptr,
  dstBinding: u32,
  dstArrayElement: u32,
  descriptorCount: u32,
  descriptorType: 'int',
  pImageInfo: ptr,
  pBufferInfo: koffi.pointer(DescriptorBufferInfo),
  pTexelBufferView: ptr,
});
export const CommandPoolCreateInfo = koffi.struct('VkCommandPoolCreateInfo', { sType: 'int', pNext: ptr, flags: u32, queueFamilyIndex: u32 });
export const CommandBufferAllocateInfo = koffi.struct('VkCommandBufferAllocateInfo', {
  sType: 'int',
  pNext: ptr,
  commandPool: ptr,
  level: 'int',
  commandBufferCount: u32,
});
export const CommandBufferBeginInfo = koffi.struct('VkCommandBufferBeginInfo', { sType: 'int', pNext: ptr, flags: u32, pInheritanceInfo: ptr });
export const MemoryBarrier = koffi.struct('VkMemoryBarrier', { sType: 'int', pNext: ptr, srcAccessMask: u32, dstAccessMask: u32 });
export const BufferCopy = koffi.struct('VkBufferCopy', { srcOffset: u64, dstOffset: u64, size: u64 });
export const FenceCreateInfo = koffi.struct('VkFenceCreateInfo', { sType: 'int', pNext: ptr, flags: u32 });
export const QueryPoolCreateInfo = koffi.struct('VkQueryPoolCreateInfo', {
  sType: 'int',
  pNext: ptr,
  flags: u32,
  queryType: 'int',
  queryCount: u32,
  pipelineStatistics: u32,
});
export const SubmitInfo = koffi.struct('VkSubmitInfo', {
  sType: 'int',
  pNext: ptr,
  waitSemaphoreCount: u32,
  pWaitSemaphores: ptr,
  pWaitDstStageMask: ptr,
  commandBufferCount: u32,
  pCommandBuffers: 'void **',
  signalSemaphoreCount: u32,
  pSignalSemaphores: ptr,
});

// ---- library and functions -------------------------------------------------------------------
let lib: ReturnType<Koffi['load']> | undefined;

/** libvulkan.so.1, loaded once; a VulkanError with the package to install when it is missing. */
export function vulkanLibrary(): ReturnType<Koffi['load']> {
  if (lib !== undefined) return lib;
  try {
    lib = koffi.load('libvulkan.so.1');
  } catch (e) {
    throw new VulkanError(`the Vulkan loader (libvulkan.so.1) could not be loaded: ${e instanceof Error ? e.message : String(e)}`, undefined, {
      hint: 'install it: on Debian/Ubuntu `sudo apt install libvulkan1 mesa-vulkan-drivers` (Mesa drivers for AMD/Intel and the lavapipe CPU driver)',
    });
  }
  return lib;
}

const PROTOTYPES = {
  vkEnumerateInstanceVersion: 'int vkEnumerateInstanceVersion(_Out_ uint32_t *v)',
  vkGetInstanceProcAddr: 'void *vkGetInstanceProcAddr(void *instance, const char *name)',
  vkCreateInstance: 'int vkCreateInstance(const VkInstanceCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyInstance: 'void vkDestroyInstance(void *instance, void *alloc)',
  vkEnumeratePhysicalDevices: 'int vkEnumeratePhysicalDevices(void *instance, _Inout_ uint32_t *count, _Out_ void **devices)',
  vkGetPhysicalDeviceProperties2: 'void vkGetPhysicalDeviceProperties2(void *pd, _Inout_ VkPhysicalDeviceProperties2 *p)',
  vkGetPhysicalDeviceFeatures2: 'void vkGetPhysicalDeviceFeatures2(void *pd, _Inout_ VkPhysicalDeviceFeatures2 *f)',
  vkGetPhysicalDeviceMemoryProperties2: 'void vkGetPhysicalDeviceMemoryProperties2(void *pd, _Inout_ VkPhysicalDeviceMemoryProperties2 *p)',
  vkGetPhysicalDeviceQueueFamilyProperties:
    'void vkGetPhysicalDeviceQueueFamilyProperties(void *pd, _Inout_ uint32_t *count, _Out_ VkQueueFamilyProperties *props)',
  vkEnumerateDeviceExtensionProperties:
    'int vkEnumerateDeviceExtensionProperties(void *pd, const char *layer, _Inout_ uint32_t *count, _Out_ VkExtensionProperties *props)',
  vkCreateDevice: 'int vkCreateDevice(void *pd, const VkDeviceCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyDevice: 'void vkDestroyDevice(void *device, void *alloc)',
  vkGetDeviceQueue: 'void vkGetDeviceQueue(void *device, uint32_t family, uint32_t index, _Out_ void **queue)',
  vkDeviceWaitIdle: 'int vkDeviceWaitIdle(void *device)',
  vkCreateBuffer: 'int vkCreateBuffer(void *device, const VkBufferCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyBuffer: 'void vkDestroyBuffer(void *device, void *buffer, void *alloc)',
  vkGetBufferMemoryRequirements: 'void vkGetBufferMemoryRequirements(void *device, void *buffer, _Out_ VkMemoryRequirements *req)',
  vkAllocateMemory: 'int vkAllocateMemory(void *device, const VkMemoryAllocateInfo *ai, void *alloc, _Out_ void **out)',
  vkFreeMemory: 'void vkFreeMemory(void *device, void *memory, void *alloc)',
  vkBindBufferMemory: 'int vkBindBufferMemory(void *device, void *buffer, void *memory, uint64_t offset)',
  vkMapMemory: 'int vkMapMemory(void *device, void *memory, uint64_t offset, uint64_t size, uint32_t flags, _Out_ void **data)',
  vkUnmapMemory: 'void vkUnmapMemory(void *device, void *memory)',
  vkCreateShaderModule: 'int vkCreateShaderModule(void *device, const VkShaderModuleCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyShaderModule: 'void vkDestroyShaderModule(void *device, void *module, void *alloc)',
  vkCreateDescriptorSetLayout: 'int vkCreateDescriptorSetLayout(void *device, const VkDescriptorSetLayoutCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyDescriptorSetLayout: 'void vkDestroyDescriptorSetLayout(void *device, void *layout, void *alloc)',
  vkCreatePipelineLayout: 'int vkCreatePipelineLayout(void *device, const VkPipelineLayoutCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyPipelineLayout: 'void vkDestroyPipelineLayout(void *device, void *layout, void *alloc)',
  vkCreateComputePipelines:
    'int vkCreateComputePipelines(void *device, void *cache, uint32_t count, const VkComputePipelineCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyPipeline: 'void vkDestroyPipeline(void *device, void *pipeline, void *alloc)',
  vkCreateDescriptorPool: 'int vkCreateDescriptorPool(void *device, const VkDescriptorPoolCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyDescriptorPool: 'void vkDestroyDescriptorPool(void *device, void *pool, void *alloc)',
  vkAllocateDescriptorSets: 'int vkAllocateDescriptorSets(void *device, const VkDescriptorSetAllocateInfo *ai, _Out_ void **sets)',
  vkFreeDescriptorSets: 'int vkFreeDescriptorSets(void *device, void *pool, uint32_t count, void **sets)',
  vkUpdateDescriptorSets:
    'void vkUpdateDescriptorSets(void *device, uint32_t writeCount, const VkWriteDescriptorSet *writes, uint32_t copyCount, void *copies)',
  vkCreateCommandPool: 'int vkCreateCommandPool(void *device, const VkCommandPoolCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyCommandPool: 'void vkDestroyCommandPool(void *device, void *pool, void *alloc)',
  vkAllocateCommandBuffers: 'int vkAllocateCommandBuffers(void *device, const VkCommandBufferAllocateInfo *ai, _Out_ void **out)',
  vkFreeCommandBuffers: 'void vkFreeCommandBuffers(void *device, void *pool, uint32_t count, void **buffers)',
  vkBeginCommandBuffer: 'int vkBeginCommandBuffer(void *cb, const VkCommandBufferBeginInfo *bi)',
  vkEndCommandBuffer: 'int vkEndCommandBuffer(void *cb)',
  vkResetCommandBuffer: 'int vkResetCommandBuffer(void *cb, uint32_t flags)',
  vkCmdBindPipeline: 'void vkCmdBindPipeline(void *cb, int bindPoint, void *pipeline)',
  vkCmdBindDescriptorSets:
    'void vkCmdBindDescriptorSets(void *cb, int bindPoint, void *layout, uint32_t first, uint32_t count, void **sets, uint32_t dynCount, void *dyn)',
  vkCmdPushConstants: 'void vkCmdPushConstants(void *cb, void *layout, uint32_t stages, uint32_t offset, uint32_t size, const void *values)',
  vkCmdDispatch: 'void vkCmdDispatch(void *cb, uint32_t x, uint32_t y, uint32_t z)',
  vkCmdPipelineBarrier:
    'void vkCmdPipelineBarrier(void *cb, uint32_t src, uint32_t dst, uint32_t deps, uint32_t memCount, const VkMemoryBarrier *mem, uint32_t bufCount, void *buf, uint32_t imgCount, void *img)',
  vkCmdCopyBuffer: 'void vkCmdCopyBuffer(void *cb, void *src, void *dst, uint32_t count, const VkBufferCopy *regions)',
  vkCmdFillBuffer: 'void vkCmdFillBuffer(void *cb, void *dst, uint64_t offset, uint64_t size, uint32_t data)',
  vkCreateQueryPool: 'int vkCreateQueryPool(void *device, const VkQueryPoolCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyQueryPool: 'void vkDestroyQueryPool(void *device, void *pool, void *alloc)',
  vkCmdResetQueryPool: 'void vkCmdResetQueryPool(void *cb, void *pool, uint32_t first, uint32_t count)',
  vkCmdWriteTimestamp: 'void vkCmdWriteTimestamp(void *cb, uint32_t stage, void *pool, uint32_t query)',
  vkGetQueryPoolResults:
    'int vkGetQueryPoolResults(void *device, void *pool, uint32_t first, uint32_t count, size_t size, _Out_ uint64_t *data, uint64_t stride, uint32_t flags)',
  vkCreateFence: 'int vkCreateFence(void *device, const VkFenceCreateInfo *ci, void *alloc, _Out_ void **out)',
  vkDestroyFence: 'void vkDestroyFence(void *device, void *fence, void *alloc)',
  vkWaitForFences: 'int vkWaitForFences(void *device, uint32_t count, void **fences, uint32_t waitAll, uint64_t timeout)',
  vkResetFences: 'int vkResetFences(void *device, uint32_t count, void **fences)',
  vkQueueSubmit: 'int vkQueueSubmit(void *queue, uint32_t count, const VkSubmitInfo *submits, void *fence)',
} as const;

type Fn = (...args: unknown[]) => unknown;
export type VulkanApi = { readonly [K in keyof typeof PROTOTYPES]: Fn };
let api: VulkanApi | undefined;

/** The Vulkan functions, bound on first use. Throws a VulkanError with the fix when the loader is missing. */
export function vk(): VulkanApi {
  if (api === undefined) {
    const l = vulkanLibrary();
    api = Object.fromEntries(Object.entries(PROTOTYPES).map(([name, proto]) => [name, l.func(proto) as Fn])) as VulkanApi;
  }
  return api;
}

/** Calls an out-handle creator and returns the handle, checking the result. */
export function create(call: string, fn: (out: [Handle | null]) => unknown): Handle {
  const out: [Handle | null] = [null];
  check(fn(out) as number, call);
  if (out[0] === null) throw new VulkanError(`${call} returned no handle`);
  return out[0];
}
