/**
 * What `unicorn doctor` looks at, gathered once into a snapshot: file contents from /proc, /sys and
 * /etc, command outputs, the Vulkan devices and a short self-test on the chosen one. The checks
 * (checks.ts) are pure functions of this snapshot, so recorded snapshots test them; `--snapshot`
 * writes one for a bug report. Nothing here needs root.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DeviceInfo } from '../vulkan/device.js';

export interface SelfTest {
  readonly device: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly matvecGbps: number | null;
  readonly copyGbps: number | null;
}

export interface Snapshot {
  readonly schema: 1;
  readonly takenAt: string;
  readonly platform: string;
  readonly arch: string;
  readonly user: { readonly uid: number; readonly groups: readonly string[] };
  /** Contents of files (null: absent or unreadable), keyed by path. */
  readonly files: Readonly<Record<string, string | null>>;
  /** Directory listings (null: absent), keyed by path. */
  readonly dirs: Readonly<Record<string, readonly string[] | null>>;
  /** Command outputs (null: the command is not installed). */
  readonly commands: Readonly<Record<string, { readonly code: number; readonly output: string } | null>>;
  readonly vulkan: {
    readonly loader: boolean;
    readonly error: string | null;
    readonly devices: readonly DeviceInfo[];
    readonly chosen: number | null;
    readonly selfTest: SelfTest | null;
  };
}

const FILES = [
  '/proc/version',
  '/proc/cpuinfo',
  '/proc/meminfo',
  '/proc/cmdline',
  '/proc/modules',
  '/proc/self/limits',
  '/etc/os-release',
  '/sys/module/amdgpu/parameters/gttsize',
  '/sys/module/ttm/parameters/pages_limit',
  '/sys/module/amdxdna/version',
];
const DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/dev/accel', '/lib/firmware/amdnpu', '/sys/bus/pci/devices', '/sys/class/drm'];

function read(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

function list(p: string): string[] | null {
  try {
    return fs.readdirSync(p).sort();
  } catch {
    return null;
  }
}

function run(cmd: string, args: string[]): { code: number; output: string } | null {
  try {
    return { code: 0, output: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }) };
  } catch (e) {
    const err = e as { code?: string; status?: number; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') return null;
    return { code: err.status ?? 1, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** Gathers the snapshot. `vulkanProbe` runs the device listing and the self-test (see doctor command). */
export function collect(vulkanProbe: () => Snapshot['vulkan']): Snapshot {
  const files: Record<string, string | null> = {};
  for (const f of FILES) files[f] = read(f);
  const dirs: Record<string, string[] | null> = {};
  for (const d of DIRS) dirs[d] = list(d);
  for (const d of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d']) for (const f of dirs[d] ?? []) files[path.join(d, f)] = read(path.join(d, f));
  // PCI devices: vendor, device and class of each (the GPU and the NPU are found by their ids).
  for (const dev of dirs['/sys/bus/pci/devices'] ?? []) {
    for (const k of ['vendor', 'device', 'class']) files[`/sys/bus/pci/devices/${dev}/${k}`] = read(`/sys/bus/pci/devices/${dev}/${k}`);
  }
  // amdgpu memory facts of each DRM card (VRAM is the BIOS carve-out on an APU; GTT is system RAM).
  for (const card of (dirs['/sys/class/drm'] ?? []).filter((c) => /^card\d+$/.test(c))) {
    for (const k of ['vendor', 'device', 'mem_info_vram_total', 'mem_info_gtt_total', 'mem_info_vis_vram_total']) {
      files[`/sys/class/drm/${card}/device/${k}`] = read(`/sys/class/drm/${card}/device/${k}`);
    }
  }
  for (const a of dirs['/dev/accel'] ?? []) {
    let access = 'none';
    try {
      fs.accessSync(`/dev/accel/${a}`, fs.constants.R_OK | fs.constants.W_OK);
      access = 'rw';
    } catch {
      /* not for this user */
    }
    files[`/dev/accel/${a}#access`] = access;
  }
  const commands: Record<string, { code: number; output: string } | null> = {
    'xrt-smi --version': run('xrt-smi', ['--version']),
    'xrt-smi examine': run('xrt-smi', ['examine']),
    'id -Gn': run('id', ['-Gn']),
  };
  return {
    schema: 1,
    takenAt: new Date().toISOString(),
    platform: os.platform(),
    arch: os.arch(),
    user: {
      uid: os.userInfo().uid,
      groups: (commands['id -Gn']?.output ?? '')
        .trim()
        .split(/\s+/)
        .filter((g) => g !== ''),
    },
    files,
    dirs,
    commands,
    vulkan: vulkanProbe(),
  };
}
