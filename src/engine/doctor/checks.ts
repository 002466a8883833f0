/**
 * The doctor's checks: pure functions of a snapshot (probe.ts), each PASS / WARN / FAIL / INFO with
 * the evidence and, for anything not PASS, the fix.
 */
import { describeSubgroups } from '../kernels/subgroups.js';
import { coopShape } from '../kernels/matmul.js';
import type { DeviceInfo } from '../vulkan/device.js';
import type { KvCacheType } from '../models/memory.js';
import type { Snapshot } from './probe.js';

export type Status = 'PASS' | 'WARN' | 'FAIL' | 'INFO';

export interface Check {
  readonly section: 'system' | 'vulkan' | 'apu memory' | 'npu';
  readonly name: string;
  readonly status: Status;
  readonly evidence: string;
  readonly fix?: string;
}

/** A model's needs, from the inspect estimates (doctor --model). */
export interface ModelNeeds {
  readonly dir: string;
  readonly weights: number;
  readonly kvCache: number;
  /** The KV cache's type (--kv-cache); absent: f16. */
  readonly kvType?: KvCacheType;
  /** The KV cache's bytes as q8, where it is f16 and the model's heads take q8 (a way out to suggest). */
  readonly kvCacheQ8?: number;
  readonly ctx: number;
}

const GB = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
/** The f16 shape the prefill matmul uses, as ' (16x16x16 f16)'; nothing for a snapshot from before shapes were recorded. */
function coopShapeText(info: DeviceInfo): string {
  const shape = coopShape(info.coopMatShapes ?? []);
  return shape === undefined ? '' : ` (${shape.m}x${shape.n}x${shape.k} f16)`;
}

const GiB = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`);
const rate = (n: number) => (n >= 10 ? n.toFixed(0) : n.toFixed(2));

/** "MemTotal:  32768 kB" -> bytes. */
function meminfo(s: Snapshot, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s.files['/proc/meminfo'] ?? '');
  return m === null ? null : Number(m[1]) * 1024;
}

function kernelVersion(s: Snapshot): [number, number] | null {
  const m = /Linux version (\d+)\.(\d+)/.exec(s.files['/proc/version'] ?? '');
  return m === null ? null : [Number(m[1]), Number(m[2])];
}

function cpuModel(s: Snapshot): string | null {
  return /^model name\s*:\s*(.+)$/m.exec(s.files['/proc/cpuinfo'] ?? '')?.[1]?.trim() ?? null;
}

/** Ryzen AI parts (Phoenix, Hawk Point, Strix / Krackan), which carry an XDNA NPU. */
export function ryzenAi(model: string): string | null {
  if (/Ryzen AI (9|7|5)|HX 3\d\d|AI 3\d\d/i.test(model)) return 'Strix / Krackan Point (XDNA 2 NPU)';
  if (/Ryzen \d 8\d\d\d(HS|H|U)/i.test(model)) return 'Hawk Point (XDNA NPU)';
  if (/Ryzen \d 7\d4\d(HS|H|U)/i.test(model)) return 'Phoenix (XDNA NPU)';
  return null;
}

/** PCI devices as (vendor, device) hex ids. */
function pci(s: Snapshot): { slot: string; vendor: string; device: string; cls: string }[] {
  return (s.dirs['/sys/bus/pci/devices'] ?? []).map((slot) => ({
    slot,
    vendor: (s.files[`/sys/bus/pci/devices/${slot}/vendor`] ?? '').trim().toLowerCase(),
    device: (s.files[`/sys/bus/pci/devices/${slot}/device`] ?? '').trim().toLowerCase(),
    cls: (s.files[`/sys/bus/pci/devices/${slot}/class`] ?? '').trim().toLowerCase(),
  }));
}

/** AMD NPU PCI ids: 0x1502 Phoenix / Hawk Point, 0x17f0 Strix / Krackan. */
const NPU_IDS: Record<string, string> = { '0x1502': 'Phoenix / Hawk Point NPU', '0x17f0': 'Strix / Krackan NPU' };

function memlock(s: Snapshot): string | null {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(s.files['/proc/self/limits'] ?? '');
  return m === null ? null : m[1]!;
}

function systemChecks(s: Snapshot): Check[] {
  const out: Check[] = [];
  const os = /^PRETTY_NAME="?([^"\n]+)/m.exec(s.files['/etc/os-release'] ?? '')?.[1] ?? s.platform;
  out.push(
    s.platform === 'linux'
      ? { section: 'system', name: 'OS', status: 'PASS', evidence: `${os} (${s.arch})` }
      : { section: 'system', name: 'OS', status: 'FAIL', evidence: s.platform, fix: 'unicorn runs on Linux (x86-64)' },
  );
  const k = kernelVersion(s);
  const cpu = cpuModel(s);
  const ai = cpu === null ? null : ryzenAi(cpu);
  if (k === null) out.push({ section: 'system', name: 'kernel', status: 'WARN', evidence: '/proc/version unreadable', fix: 'run on Linux with /proc mounted' });
  else if (ai !== null && (k[0] < 6 || (k[0] === 6 && k[1] < 10))) {
    out.push({
      section: 'system',
      name: 'kernel',
      status: 'WARN',
      evidence: `Linux ${k[0]}.${k[1]}: the amdxdna NPU driver needs 6.10 or later`,
      fix: 'upgrade the kernel (6.10+), or build the out-of-tree driver from github.com/amd/xdna-driver',
    });
  } else out.push({ section: 'system', name: 'kernel', status: 'PASS', evidence: `Linux ${k[0]}.${k[1]}` });
  out.push({
    section: 'system',
    name: 'CPU',
    status: ai !== null ? 'PASS' : 'INFO',
    evidence: `${cpu ?? 'unknown'}${ai !== null ? ` · Ryzen AI: ${ai}` : ''}`,
  });
  const total = meminfo(s, 'MemTotal');
  const avail = meminfo(s, 'MemAvailable');
  if (total !== null && avail !== null) {
    out.push(
      avail < 4e9
        ? {
            section: 'system',
            name: 'RAM',
            status: 'WARN',
            evidence: `${GiB(total)} total, ${GiB(avail)} available`,
            fix: "close memory-hungry programs: loading streams weights through RAM and an APU's GPU memory is system RAM",
          }
        : { section: 'system', name: 'RAM', status: 'PASS', evidence: `${GiB(total)} total, ${GiB(avail)} available` },
    );
  }
  const ml = memlock(s);
  if (ml !== null) {
    const limited = ml !== 'unlimited' && Number(ml) < 64 * 2 ** 20;
    out.push(
      limited && ai !== null
        ? {
            section: 'system',
            name: 'memlock',
            status: 'WARN',
            evidence: `max locked memory ${ml} bytes: the NPU runtime (XRT) pins its buffers`,
            fix: 'raise it: `* - memlock unlimited` in /etc/security/limits.conf (then log in again)',
          }
        : { section: 'system', name: 'memlock', status: 'PASS', evidence: `max locked memory ${ml}` },
    );
  }
  return out;
}

function deviceLine(d: DeviceInfo): string {
  return `${d.index}: ${d.name} (${d.type}, ${d.driverName} ${d.driverInfo}, Vulkan ${d.apiVersion})`;
}

function vulkanChecks(s: Snapshot): Check[] {
  const v = s.vulkan;
  const out: Check[] = [];
  if (!v.loader) {
    out.push({
      section: 'vulkan',
      name: 'loader',
      status: 'FAIL',
      evidence: v.error ?? 'libvulkan.so.1 not found',
      fix: 'install the Vulkan loader: `sudo apt install libvulkan1` (Debian/Ubuntu), `vulkan-loader` elsewhere',
    });
    return out;
  }
  out.push({ section: 'vulkan', name: 'loader', status: 'PASS', evidence: 'libvulkan.so.1 loaded' });
  const icds = [
    ...(s.dirs['/usr/share/vulkan/icd.d'] ?? []).map((f) => `/usr/share/vulkan/icd.d/${f}`),
    ...(s.dirs['/etc/vulkan/icd.d'] ?? []).map((f) => `/etc/vulkan/icd.d/${f}`),
  ];
  const named = icds.map((f) => {
    const base = f.split('/').pop()!;
    const kind = /radeon/i.test(base)
      ? 'RADV'
      : /amd/i.test(base)
        ? 'AMDVLK'
        : /nvidia/i.test(base)
          ? 'NVIDIA'
          : /lvp/i.test(base)
            ? 'lavapipe'
            : /intel/i.test(base)
              ? 'ANV'
              : base;
    return kind;
  });
  out.push(
    icds.length === 0 && v.devices.length === 0
      ? {
          section: 'vulkan',
          name: 'drivers (ICDs)',
          status: 'FAIL',
          evidence: 'no Vulkan driver manifest in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d',
          fix: "install a driver: `sudo apt install mesa-vulkan-drivers` (RADV for AMD GPUs, lavapipe on the CPU) or your vendor's",
        }
      : {
          section: 'vulkan',
          name: 'drivers (ICDs)',
          status: 'PASS',
          evidence: [...new Set(named)].join(', ') || 'provided by the environment (VK_DRIVER_FILES)',
        },
  );
  if (v.devices.length === 0) {
    out.push({
      section: 'vulkan',
      name: 'devices',
      status: 'FAIL',
      evidence: v.error ?? 'no Vulkan device',
      fix: 'check the driver install (`vulkaninfo --summary`); on AMD, the amdgpu kernel driver must be loaded',
    });
    return out;
  }
  const chosen = v.devices.find((d) => d.index === v.chosen) ?? v.devices[0]!;
  const onlyCpu = v.devices.every((d) => d.type === 'cpu');
  out.push({
    section: 'vulkan',
    name: 'devices',
    status: onlyCpu ? 'WARN' : 'PASS',
    evidence: `${v.devices.map(deviceLine).join(' · ')} · unicorn uses ${chosen.index}`,
    ...(onlyCpu
      ? {
          fix: "only a CPU driver (lavapipe): install your GPU's Vulkan driver (`mesa-vulkan-drivers` brings RADV for AMD); lavapipe is for tests, far too slow for models",
        }
      : {}),
  });
  out.push({
    section: 'vulkan',
    name: 'memory heaps',
    status: 'INFO',
    evidence: chosen.heaps
      .map((h) => `${h.index}: ${GiB(h.size)} ${h.deviceLocal ? 'device-local' : 'host'}${h.budget !== null ? ` (budget ${GiB(h.budget)})` : ''}`)
      .join(' · '),
  });
  const need = [chosen.subgroupArithmetic ? null : 'subgroup arithmetic', chosen.storage16Bit ? null : '16-bit storage'].filter((x) => x !== null);
  const nice = [
    chosen.integerDotProduct ? null : 'integer dot product (INT4 runs on the slower float path)',
    // A CPU driver prefills through its own kernel whatever it has.
    chosen.cooperativeMatrix || chosen.type === 'cpu' ? null : 'cooperative matrix (prefill takes the shared-memory matmul: 7-8x slower on an H200)',
    chosen.shaderFloat16 ? null : 'fp16 arithmetic',
  ].filter((x) => x !== null);
  out.push({
    section: 'vulkan',
    name: 'features',
    status: need.length > 0 ? 'FAIL' : nice.filter((n) => !n.includes('not used')).length > 0 ? 'WARN' : 'PASS',
    evidence: `subgroup ${chosen.subgroupSize}${chosen.subgroupArithmetic ? ' with arithmetic' : ''} · fp16 ${chosen.shaderFloat16 ? 'yes' : 'no'} · int8 ${chosen.shaderInt8 ? 'yes' : 'no'} · 8/16-bit storage ${chosen.storage8Bit ? 'yes' : 'no'}/${chosen.storage16Bit ? 'yes' : 'no'} · integer dot ${chosen.integerDotProduct ? 'yes' : 'no'} · cooperative matrix ${chosen.cooperativeMatrix ? `yes${coopShapeText(chosen)}` : 'no'} · maxStorageBufferRange ${GiB(chosen.maxStorageBufferRange)}${nice.length > 0 ? ` · missing: ${nice.join(', ')}` : ''}`,
    ...(need.length > 0
      ? { fix: `the driver lacks ${need.join(' and ')}, which unicorn's kernels need: update the driver (Mesa 22+)` }
      : nice.filter((n) => !n.includes('not used')).length > 0
        ? { fix: 'a newer driver (Mesa 23+ for RADV) adds these' }
        : {}),
  });
  // Snapshots recorded before subgroup size control was read have no subgroupSizes: the driver's size only.
  let subgroups: string;
  try {
    subgroups = describeSubgroups({ ...chosen, subgroupSizes: chosen.subgroupSizes ?? null });
  } catch (e) {
    subgroups = e instanceof Error ? e.message : String(e); // UNICORN_SUBGROUP_SIZE asking for a size this device lacks
  }
  out.push({ section: 'vulkan', name: 'subgroups', status: 'INFO', evidence: subgroups });
  const t = v.selfTest;
  if (t !== null) {
    const speed =
      t.matvecGbps !== null && t.copyGbps !== null
        ? ` · ${rate(t.matvecGbps)} GB/s, ${((100 * t.matvecGbps) / t.copyGbps).toFixed(0)}% of a ${rate(t.copyGbps)} GB/s copy`
        : '';
    out.push(
      t.ok
        ? { section: 'vulkan', name: 'self-test', status: 'PASS', evidence: `${t.detail}${speed}` }
        : {
            section: 'vulkan',
            name: 'self-test',
            status: 'FAIL',
            evidence: t.detail,
            fix: 'the GPU computed a wrong result: update the driver; run `unicorn doctor --snapshot report.json` and attach it to a bug report',
          },
    );
  }
  return out;
}

/** amdgpu cards: VRAM (the BIOS carve-out on an APU) and GTT (system RAM the GPU maps). */
function amdCards(s: Snapshot): { card: string; vram: number; gtt: number; device: string }[] {
  return (s.dirs['/sys/class/drm'] ?? [])
    .filter((c) => /^card\d+$/.test(c))
    .flatMap((card) => {
      const f = (k: string) => s.files[`/sys/class/drm/${card}/device/${k}`];
      const vram = f('mem_info_vram_total');
      if (vram === null || vram === undefined) return [];
      return [{ card, vram: Number(vram.trim()), gtt: Number((f('mem_info_gtt_total') ?? '0').trim()), device: (f('device') ?? '').trim() }];
    });
}

function apuChecks(s: Snapshot, model?: ModelNeeds): Check[] {
  const cards = amdCards(s);
  const integrated = s.vulkan.devices.find((d) => d.type === 'integrated-gpu' && d.vendorId === 0x1002);
  if (cards.length === 0) {
    return [
      {
        section: 'apu memory',
        name: 'amdgpu',
        status: 'INFO',
        evidence: 'no amdgpu card (mem_info_vram_total absent): not an AMD GPU, or the amdgpu driver is not loaded',
      },
    ];
  }
  const out: Check[] = [];
  const cmdline = s.files['/proc/cmdline'] ?? '';
  const gttParam = /amdgpu\.gttsize=(\d+)/.exec(cmdline)?.[1] ?? s.files['/sys/module/amdgpu/parameters/gttsize']?.trim() ?? null;
  const pages = /ttm\.pages_limit=(\d+)/.exec(cmdline)?.[1] ?? s.files['/sys/module/ttm/parameters/pages_limit']?.trim() ?? null;
  const total = meminfo(s, 'MemTotal') ?? 0;
  for (const c of cards) {
    const apu = integrated !== undefined || c.vram <= 16 * 2 ** 30;
    out.push(
      apu && c.vram < 4 * 2 ** 30
        ? {
            section: 'apu memory',
            name: `${c.card} VRAM (UMA carve-out)`,
            status: 'WARN',
            evidence: `${GiB(c.vram)} reserved by the BIOS`,
            fix: 'raise "UMA Frame Buffer Size" (AMD CBS > NBIO > GFX Configuration, or "iGPU Memory" / "UMA_SPECIFIED") to 8-16 GB; unicorn places weights there first',
          }
        : { section: 'apu memory', name: `${c.card} VRAM${apu ? ' (UMA carve-out)' : ''}`, status: 'PASS', evidence: GiB(c.vram) },
    );
    const gttSmall = apu && total > 0 && c.gtt < total / 2;
    out.push(
      gttSmall
        ? {
            section: 'apu memory',
            name: `${c.card} GTT`,
            status: 'WARN',
            evidence: `${GiB(c.gtt)} of ${GiB(total)} RAM mappable by the GPU (amdgpu.gttsize ${gttParam ?? 'default'}, ttm.pages_limit ${pages ?? 'default'})`,
            fix: `let the GPU map more RAM: add \`amdgpu.gttsize=${Math.floor((total * 0.75) / 2 ** 20)} ttm.pages_limit=${Math.floor((total * 0.75) / 4096)}\` to the kernel command line (GRUB_CMDLINE_LINUX), update-grub, reboot`,
          }
        : {
            section: 'apu memory',
            name: `${c.card} GTT`,
            status: 'PASS',
            evidence: `${GiB(c.gtt)} (amdgpu.gttsize ${gttParam ?? 'default'}, ttm.pages_limit ${pages ?? 'default'})`,
          },
    );
    if (model !== undefined) {
      const need = model.weights + model.kvCache;
      const room = (c.vram + c.gtt) * 0.95;
      out.push(
        need <= room
          ? {
              section: 'apu memory',
              name: 'model fits',
              status: 'PASS',
              evidence: `${model.dir}: ${GB(need)} (weights ${GB(model.weights)} + KV cache ${model.kvType ?? 'f16'} ${GB(model.kvCache)} at --ctx ${model.ctx}) in VRAM + GTT ${GB(c.vram + c.gtt)}`,
            }
          : {
              section: 'apu memory',
              name: 'model fits',
              status: 'FAIL',
              evidence: `${model.dir}: ${GB(need)} needed, VRAM + GTT ${GB(c.vram + c.gtt)}`,
              fix: `a quantized copy (\`unicorn quantize --scheme int4|mixed\`), ${model.kvCacheQ8 === undefined ? '' : `--kv-cache q8 (KV cache ${GB(model.kvCacheQ8)}), `}a shorter --ctx, or a larger carve-out / GTT (above)`,
            },
      );
    }
  }
  return out;
}

function npuChecks(s: Snapshot): Check[] {
  const out: Check[] = [];
  const cpu = cpuModel(s) ?? '';
  const ai = ryzenAi(cpu);
  const npu = pci(s).find((p) => p.vendor === '0x1022' && NPU_IDS[p.device] !== undefined);
  if (npu === undefined) {
    out.push(
      ai !== null
        ? {
            section: 'npu',
            name: 'NPU device',
            status: 'WARN',
            evidence: `${cpu} has an NPU, but no NPU PCI device (1022:1502 / 1022:17f0) is visible`,
            fix: 'it is probably disabled in the BIOS: look for "IPU Control" or "NPU" (AMD CBS > NBIO Common Options) and enable it',
          }
        : { section: 'npu', name: 'NPU device', status: 'INFO', evidence: 'no AMD NPU on this machine' },
    );
    out.push({
      section: 'npu',
      name: 'NPU execution',
      status: 'INFO',
      evidence: 'unicorn does not run models on the NPU yet (planned); everything runs through Vulkan',
    });
    return out;
  }
  out.push({ section: 'npu', name: 'NPU device', status: 'PASS', evidence: `${NPU_IDS[npu.device]} at ${npu.slot}` });
  const loaded =
    /^amdxdna\s/m.test(s.files['/proc/modules'] ?? '') ||
    (s.files['/sys/module/amdxdna/version'] !== null && s.files['/sys/module/amdxdna/version'] !== undefined);
  out.push(
    loaded
      ? { section: 'npu', name: 'amdxdna driver', status: 'PASS', evidence: 'module loaded' }
      : {
          section: 'npu',
          name: 'amdxdna driver',
          status: 'FAIL',
          evidence: 'module not loaded',
          fix: 'Linux 6.10+ with CONFIG_DRM_ACCEL_AMDXDNA (`sudo modprobe amdxdna`), or the out-of-tree driver from github.com/amd/xdna-driver',
        },
  );
  const accel = s.dirs['/dev/accel'] ?? [];
  const rw = accel.filter((a) => s.files[`/dev/accel/${a}#access`] === 'rw');
  out.push(
    accel.length === 0
      ? { section: 'npu', name: '/dev/accel', status: 'FAIL', evidence: 'no /dev/accel/accel* node', fix: 'load the amdxdna driver (above)' }
      : rw.length === 0
        ? {
            section: 'npu',
            name: '/dev/accel',
            status: 'FAIL',
            evidence: `${accel.join(', ')} not readable and writable by this user (groups: ${s.user.groups.join(' ') || 'none'})`,
            fix: 'add yourself to the group that owns it: `sudo usermod -aG render $USER` (then log in again), or a udev rule',
          }
        : { section: 'npu', name: '/dev/accel', status: 'PASS', evidence: `${rw.join(', ')} read/write` },
  );
  const xrt = s.commands['xrt-smi --version'];
  out.push(
    xrt === null || xrt === undefined
      ? {
          section: 'npu',
          name: 'XRT',
          status: 'WARN',
          evidence: 'xrt-smi not found',
          fix: 'install XRT with the NPU plugin (github.com/amd/xdna-driver builds both), then `source /opt/xilinx/xrt/setup.sh`',
        }
      : {
          section: 'npu',
          name: 'XRT',
          status: xrt.code === 0 ? 'PASS' : 'WARN',
          evidence: /Version\s*:\s*(\S+)/i.exec(xrt.output)?.[1] ?? xrt.output.trim().split('\n')[0] ?? '',
        },
  );
  const fw = s.dirs['/lib/firmware/amdnpu'] ?? [];
  out.push(
    fw.length === 0
      ? {
          section: 'npu',
          name: 'NPU firmware',
          status: 'FAIL',
          evidence: '/lib/firmware/amdnpu is missing or empty',
          fix: 'install linux-firmware 2024-06 or later (it ships amdnpu/*/npu.sbin)',
        }
      : { section: 'npu', name: 'NPU firmware', status: 'PASS', evidence: `amdnpu: ${fw.join(', ')}` },
  );
  const power = /Power Mode\s*:\s*(.+)/i.exec(s.commands['xrt-smi examine']?.output ?? '')?.[1]?.trim();
  out.push({ section: 'npu', name: 'power mode', status: 'INFO', evidence: power ?? 'unknown (xrt-smi examine does not say)' });
  out.push({
    section: 'npu',
    name: 'NPU execution',
    status: 'INFO',
    evidence: 'unicorn does not run models on the NPU yet (planned); everything runs through Vulkan',
  });
  return out;
}

export function runChecks(s: Snapshot, model?: ModelNeeds): Check[] {
  return [...systemChecks(s), ...vulkanChecks(s), ...apuChecks(s, model), ...npuChecks(s)];
}
