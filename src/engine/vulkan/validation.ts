/**
 * Khronos validation, when asked for (UNICORN_VALIDATION=1) and installed (Debian/Ubuntu:
 * vulkan-validationlayers). Messages of warning or error severity are collected; the tests fail on any
 * error. Off by default: it slows every Vulkan call.
 */
import { check, koffi, vk, vulkanLibrary, type Handle } from './ffi.js';

export const VALIDATION_LAYER = 'VK_LAYER_KHRONOS_validation';
const SEVERITY_WARNING = 0x100;
const SEVERITY_ERROR = 0x1000;

const CallbackData = koffi.struct('VkDebugUtilsMessengerCallbackDataEXT', {
  sType: 'int',
  pNext: 'void *',
  flags: 'uint32_t',
  pMessageIdName: 'const char *',
  messageIdNumber: 'int32_t',
  pMessage: 'const char *',
  queueLabelCount: 'uint32_t',
  pQueueLabels: 'void *',
  cmdBufLabelCount: 'uint32_t',
  pCmdBufLabels: 'void *',
  objectCount: 'uint32_t',
  pObjects: 'void *',
});
const Callback = koffi.proto('uint32_t VkDebugCallback(uint32_t severity, uint32_t types, const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)');
// Registered by name for the prototype below.
koffi.struct('VkDebugUtilsMessengerCreateInfoEXT', {
  sType: 'int',
  pNext: 'void *',
  flags: 'uint32_t',
  messageSeverity: 'uint32_t',
  messageType: 'uint32_t',
  pfnUserCallback: koffi.pointer(Callback),
  pUserData: 'void *',
});
const CreateMessenger = koffi.proto(
  'int vkCreateDebugUtilsMessengerEXT(void *instance, const VkDebugUtilsMessengerCreateInfoEXT *ci, void *alloc, _Out_ void **out)',
);
const ST_DEBUG_UTILS_MESSENGER_CREATE_INFO = 1000128004;

export interface ValidationMessage {
  readonly severity: 'warning' | 'error';
  readonly id: string;
  readonly message: string;
}

const messages: ValidationMessage[] = [];
let registered: unknown;

/** Messages collected since the last call, which clears them. */
export function takeValidationMessages(): ValidationMessage[] {
  return messages.splice(0, messages.length);
}

export function validationRequested(): boolean {
  return process.env['UNICORN_VALIDATION'] === '1';
}

/** True when the validation layer is installed. */
export function validationAvailable(): boolean {
  const count: [number] = [0];
  const enumerate = vulkanLibrary().func('int vkEnumerateInstanceLayerProperties(_Inout_ uint32_t *count, _Out_ void *props)');
  check(enumerate(count, null) as number, 'vkEnumerateInstanceLayerProperties');
  if (count[0] === 0) return false;
  const size = 256 + 4 + 4 + 256; // VkLayerProperties
  const buf = Buffer.alloc(size * count[0]);
  check(enumerate(count, buf) as number, 'vkEnumerateInstanceLayerProperties', [5]);
  for (let i = 0; i < count[0]; i++) {
    const name = buf
      .subarray(i * size, i * size + 256)
      .toString('utf8')
      .replace(/\0.*$/s, '');
    if (name === VALIDATION_LAYER) return true;
  }
  return false;
}

/** Installs the messenger on an instance created with the layer and VK_EXT_debug_utils. */
export function installMessenger(instance: Handle): Handle {
  const fn = vk().vkGetInstanceProcAddr(instance, 'vkCreateDebugUtilsMessengerEXT') as bigint | null;
  if (fn === null || fn === 0n) throw new Error('vkCreateDebugUtilsMessengerEXT is missing');
  registered = koffi.register((severity: number, _types: number, ptr: unknown) => {
    // Pointer parameters of callbacks arrive undecoded.
    const data = koffi.decode(ptr, CallbackData) as { pMessageIdName: string | null; pMessage: string | null };
    messages.push({ severity: severity >= SEVERITY_ERROR ? 'error' : 'warning', id: data.pMessageIdName ?? '', message: data.pMessage ?? '' });
    return 0;
  }, koffi.pointer(Callback));
  const out: [Handle | null] = [null];
  check(
    koffi.call(
      fn,
      CreateMessenger,
      instance,
      {
        sType: ST_DEBUG_UTILS_MESSENGER_CREATE_INFO,
        pNext: null,
        flags: 0,
        messageSeverity: SEVERITY_WARNING | SEVERITY_ERROR,
        messageType: 0x1 | 0x2 | 0x4,
        pfnUserCallback: registered,
        pUserData: null,
      },
      null,
      out,
    ) as number,
    'vkCreateDebugUtilsMessengerEXT',
  );
  return out[0]!;
}
