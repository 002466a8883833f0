/**
 * A doctor snapshot of a Ryzen AI laptop (Ryzen 9 8945HS, Radeon 780M, XDNA NPU, 64 GB RAM), built
 * from the documented formats, since none is at hand to record:
 * - /sys/class/drm/cardN/device/mem_info_vram_total, mem_info_gtt_total: bytes, one decimal number
 *   and a newline (kernel Documentation/gpu/amdgpu/driver-misc.rst);
 * - /sys/bus/pci/devices/<slot>/{vendor,device,class}: "0x1002\n" style hex (sysfs-bus-pci ABI);
 *   780M = 1002:15bf, the Phoenix / Hawk Point NPU = 1022:1502;
 * - /proc/meminfo, /proc/modules, /proc/self/limits, /proc/cpuinfo: proc(5);
 * - the Vulkan device as RADV reports a 780M (integrated-gpu, vendor 0x1002, subgroup 64).
 * `variant` 'bios-defaults' is the same laptop as shipped: a 512 MB carve-out, GTT at its default
 * (half the RAM), the NPU disabled in the BIOS, an old kernel.
 */
import type { Snapshot } from '../../src/engine/doctor/probe.js';
import type { DeviceInfo } from '../../src/engine/vulkan/device.js';

const GiB = 2 ** 30;

export function ryzenSnapshot(variant: 'tuned' | 'bios-defaults'): Snapshot {
  const tuned = variant === 'tuned';
  const ram = 64 * GiB;
  const vram = tuned ? 16 * GiB : 512 * 2 ** 20;
  const gtt = tuned ? 44 * GiB : 24 * GiB;
  const radeon: DeviceInfo = {
    index: 0,
    name: 'AMD Radeon 780M (RADV PHOENIX)',
    type: 'integrated-gpu',
    vendorId: 0x1002,
    deviceId: 0x15bf,
    apiVersion: '1.3.274',
    driverName: 'radv',
    driverInfo: 'Mesa 24.0.5',
    subgroupSize: 64,
    subgroupArithmetic: true,
    shaderFloat16: true,
    shaderInt8: true,
    storage8Bit: true,
    storage16Bit: true,
    cooperativeMatrix: true,
    integerDotProduct: true,
    memoryBudgetExt: true,
    maxStorageBufferRange: 4294967295,
    maxMemoryAllocationSize: 4294967292,
    maxMemoryAllocationCount: 4294967295,
    maxComputeSharedMemorySize: 65536,
    maxComputeWorkGroupCount: [4294967295, 65535, 65535],
    maxComputeWorkGroupInvocations: 1024,
    maxPushConstantsSize: 256,
    minStorageBufferOffsetAlignment: 4,
    timestampPeriodNs: 10,
    heaps: [
      { index: 0, size: vram, deviceLocal: true, budget: vram, usage: 0 },
      { index: 1, size: gtt, deviceLocal: false, budget: gtt, usage: 0 },
    ],
    memoryTypes: [],
    computeQueueFamily: 0,
  } as unknown as DeviceInfo;
  const pciDevs: Record<string, [string, string, string]> = {
    '0000:00:00.0': ['0x1022', '0x14e8', '0x060000'],
    '0000:c4:00.0': ['0x1002', '0x15bf', '0x030000'],
    ...(tuned ? { '0000:c6:00.1': ['0x1022', '0x1502', '0x118000'] as [string, string, string] } : {}),
  };
  const files: Record<string, string | null> = {
    '/proc/version': `Linux version ${tuned ? '6.11.0-19-generic' : '6.5.0-45-generic'} (buildd@lcy02-amd64) #19-Ubuntu SMP\n`,
    '/proc/cpuinfo': 'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 9 8945HS w/ Radeon 780M Graphics\n',
    '/proc/meminfo': `MemTotal:       ${ram / 1024} kB\nMemFree:        ${40 * 2 ** 20} kB\nMemAvailable:   ${50 * 2 ** 20} kB\n`,
    '/proc/cmdline': `BOOT_IMAGE=/vmlinuz root=UUID=x ro quiet splash${tuned ? ' amdgpu.gttsize=45056 ttm.pages_limit=11534336' : ''}\n`,
    '/proc/modules': `amdgpu 12345678 4 - Live 0x0\n${tuned ? 'amdxdna 180224 0 - Live 0x0\n' : ''}`,
    '/proc/self/limits': `Max locked memory         ${tuned ? 'unlimited            unlimited' : '8388608              8388608'}            bytes\n`,
    '/etc/os-release': 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\n',
    '/sys/module/amdgpu/parameters/gttsize': tuned ? '45056\n' : '-1\n',
    '/sys/module/ttm/parameters/pages_limit': tuned ? '11534336\n' : '8388608\n',
    '/sys/module/amdxdna/version': null,
    '/sys/class/drm/card1/device/vendor': '0x1002\n',
    '/sys/class/drm/card1/device/device': '0x15bf\n',
    '/sys/class/drm/card1/device/mem_info_vram_total': `${vram}\n`,
    '/sys/class/drm/card1/device/mem_info_gtt_total': `${gtt}\n`,
    '/usr/share/vulkan/icd.d/radeon_icd.x86_64.json': '{"ICD": {"library_path": "libvulkan_radeon.so"}}',
    ...(tuned ? { '/dev/accel/accel0#access': 'rw' } : {}),
  };
  for (const [slot, [vendor, device, cls]] of Object.entries(pciDevs)) {
    files[`/sys/bus/pci/devices/${slot}/vendor`] = `${vendor}\n`;
    files[`/sys/bus/pci/devices/${slot}/device`] = `${device}\n`;
    files[`/sys/bus/pci/devices/${slot}/class`] = `${cls}\n`;
  }
  return {
    schema: 1,
    takenAt: '2026-11-23T00:00:00.000Z',
    platform: 'linux',
    arch: 'x64',
    user: { uid: 1000, groups: ['user', 'render', 'video'] },
    files,
    dirs: {
      '/usr/share/vulkan/icd.d': ['radeon_icd.x86_64.json'],
      '/etc/vulkan/icd.d': null,
      '/dev/accel': tuned ? ['accel0'] : null,
      '/lib/firmware/amdnpu': tuned ? ['1502_00', '17f0_10'] : ['1502_00'],
      '/sys/bus/pci/devices': Object.keys(pciDevs),
      '/sys/class/drm': ['card1', 'card1-eDP-1', 'renderD128'],
    },
    commands: {
      'xrt-smi --version': tuned ? { code: 0, output: 'XRT Build Version: 2.19.0\n    Version              : 2.19.0\n' } : null,
      'xrt-smi examine': tuned
        ? { code: 0, output: 'Device(s) Present\n|BDF             |Name       |\n|[0000:c6:00.1]  |NPU Phoenix  |\nPower Mode             : Default\n' }
        : null,
      'id -Gn': { code: 0, output: 'user render video\n' },
    },
    vulkan: {
      loader: true,
      error: null,
      devices: [radeon],
      chosen: 0,
      selfTest: {
        device: radeon.name,
        ok: true,
        detail: 'bf16 4096x4096 matrix x vector against the CPU: largest relative error 9.5e-5',
        matvecGbps: 71,
        copyGbps: 88,
      },
    },
  };
}
