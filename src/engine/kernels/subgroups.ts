/**
 * What unicorn's kernels assume of subgroups, checked once per device: in a workgroup whose size is
 * a multiple of the subgroup size, the invocations fall into full subgroups of consecutive local
 * indices (invocation i is lane i % size of subgroup i / size), gl_NumSubgroups counts them, and
 * subgroupAdd sums the subgroup's lanes. matvec's tiles, rmsnorm, top-k, argmax and attention rely on
 * it; the Vulkan specification leaves the layout to the driver, every driver we know lays them out
 * so. A driver that does not is refused with a clear error rather than computing wrong numbers.
 * Kernels whose workgroups are not a multiple of the subgroup size (rope_store: head_dim / 4
 * invocations) use no subgroup operation.
 */
import { UnicornError } from '../errors.js';
import { Commands } from '../vulkan/commands.js';
import type { Device, DeviceInfo } from '../vulkan/device.js';
import { VulkanError } from '../vulkan/ffi.js';
import { Allocator } from '../vulkan/memory.js';
import { kernelFor } from '../vulkan/pipeline.js';
import { KERNELS } from './table.js';
import { download } from '../vulkan/transfer.js';

/** One invocation's view of its subgroup (shaders/subgroup_probe.comp). */
export interface LaneReport {
  readonly size: number;
  readonly numSubgroups: number;
  readonly id: number;
  readonly lane: number;
  /** subgroupAdd(1): the active lanes of its subgroup. */
  readonly lanes: number;
  /** subgroupAdd(index + 1) */
  readonly sum: number;
}

/** Runs the probe for one workgroup of `invocations` (at a required subgroup size, if given) and returns every invocation's report. */
export function probeSubgroups(device: Device, invocations: number, subgroupSize?: number): LaneReport[] {
  const alloc = new Allocator(device, { mapDeviceMemory: false });
  const cmds = new Commands(device);
  const out = alloc.alloc(invocations * 24, 'subgroup probe');
  try {
    const k = kernelFor(device, KERNELS.subgroup_probe, {}, { workgroup: invocations }, subgroupSize === undefined ? {} : { subgroupSize });
    cmds.begin().dispatch(k, k.bind({ o: out }), k.push({}), [1, 1]);
    cmds.barrier().submitAndWait();
    const w = new Uint32Array(invocations * 6);
    download(alloc, cmds, out, new Uint8Array(w.buffer));
    return Array.from({ length: invocations }, (_, i) => ({
      size: w[6 * i]!,
      numSubgroups: w[6 * i + 1]!,
      id: w[6 * i + 2]!,
      lane: w[6 * i + 3]!,
      lanes: w[6 * i + 4]!,
      sum: w[6 * i + 5]!,
    }));
  } finally {
    alloc.free(out);
    alloc.destroy();
  }
}

/** What a workgroup of `n` invocations in subgroups of `size` looks like when laid out as unicorn assumes. */
export function expectedLayout(n: number, size: number): LaneReport[] {
  const groups = Math.ceil(n / size);
  return Array.from({ length: n }, (_, i) => {
    const id = Math.floor(i / size);
    const first = id * size;
    const last = Math.min(n, first + size);
    return { size, numSubgroups: groups, id, lane: i - first, lanes: last - first, sum: (last * (last + 1) - first * (first + 1)) / 2 };
  });
}

/** The first invocation whose report differs from the expected layout, described; undefined if none. */
export function layoutMismatch(got: readonly LaneReport[], want: readonly LaneReport[]): string | undefined {
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const keys = Object.keys(w) as (keyof LaneReport)[];
    const bad = keys.filter((k) => g[k] !== w[k]);
    if (bad.length > 0) return `invocation ${i} of ${want.length}: ${bad.map((k) => `${k} ${g[k]} (expected ${w[k]})`).join(', ')}`;
  }
  return undefined;
}

/** The kernel families that use subgroup operations, each of which runs at one subgroup size. */
export type KernelFamily = 'matvec' | 'attention' | 'norm' | 'sampling';
export const KERNEL_FAMILIES: readonly KernelFamily[] = ['matvec', 'attention', 'norm', 'sampling'];

export interface SubgroupChoice {
  /** The size the family's pipelines run at; the host sizes tiles and workgroups from it. */
  readonly size: number;
  /** Whether the pipelines ask for it (VK_EXT_subgroup_size_control), with full subgroups where allowed. */
  readonly required: boolean;
  readonly why: string;
}

const AMD = 0x1002;
const INTEL = 0x8086;

/**
 * The subgroup size each kernel family runs at on a device. Every kernel is correct at any size from
 * 4 to 128 (the host derives tiles and workgroups from the size chosen here); the choice is for speed.
 * Where the device can run more than one size (VK_EXT_subgroup_size_control):
 *
 * - AMD RDNA (sizes 32 and 64; the Radeon 780M is RDNA3): the drivers default to wave64, and
 *   llama.cpp's Vulkan backend keeps it for its matrix x vector kernels on every AMD GPU (they ask for
 *   the device's subgroup size, 64, with full subgroups) and for everything else on RDNA3 and GCN,
 *   whose per-architecture table has no entry: wave32 defaults on RDNA1/2 gained ~7% prompt speed
 *   (PR #12087, RX 5700 XT) but were left off RDNA3 after they broke another ggml user's output, and
 *   0cc4m noted it must be tuned "for every shader for every RDNA generation". Its attention for
 *   decode-sized batches (under 4 rows) runs at 32 on RDNA, else 64 (PR #19625). unicorn follows
 *   that: wave64 everywhere but decode attention, which runs at 32 (a subgroup a key position: at 32
 *   a workgroup of 128 has four positions in flight instead of two). Measured on no AMD GPU yet.
 * - Intel (8 to 32): llama.cpp's matrix x vector asks for 16 where it may; so does unicorn. The rest
 *   keep the driver's size.
 * - NVIDIA (32 only), lavapipe (its vector width / 32) and devices without size control: the driver's.
 *
 * UNICORN_SUBGROUP_SIZE=<n> asks for n everywhere (where the device allows it): to test or measure.
 */
export function subgroupPlan(info: DeviceInfo, forced = process.env['UNICORN_SUBGROUP_SIZE']): Record<KernelFamily, SubgroupChoice> {
  const sizes = info.subgroupSizes;
  const allowed = (n: number) => sizes !== null && n >= sizes.min && n <= sizes.max;
  const driver: SubgroupChoice = { size: info.subgroupSize, required: false, why: "the driver's" };
  const ask = (n: number, why: string): SubgroupChoice => (allowed(n) ? { size: n, required: true, why } : driver);
  if (forced !== undefined && forced !== '') {
    const n = Number(forced);
    if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0 || !allowed(n)) {
      throw new UnicornError(
        `UNICORN_SUBGROUP_SIZE=${forced}: ${info.name} runs compute pipelines at ${sizes === null ? `subgroup size ${info.subgroupSize} only (no VK_EXT_subgroup_size_control)` : `subgroup sizes ${sizes.min} to ${sizes.max}`}`,
      );
    }
    const c = ask(n, 'UNICORN_SUBGROUP_SIZE');
    return { matvec: c, attention: c, norm: c, sampling: c };
  }
  const plan: Record<KernelFamily, SubgroupChoice> = { matvec: driver, attention: driver, norm: driver, sampling: driver };
  if (info.vendorId === AMD && sizes !== null && sizes.min <= 32 && sizes.max >= 64) {
    return { ...plan, matvec: ask(64, 'wave64 (as llama.cpp on AMD)'), attention: ask(32, 'wave32 for decode (as llama.cpp on RDNA)') };
  }
  if (info.vendorId === INTEL) return { ...plan, matvec: ask(16, '16 (as llama.cpp on Intel)') };
  return plan;
}

/** One line for doctor and bench: the size each family runs at. */
export function describeSubgroups(info: DeviceInfo): string {
  const plan = subgroupPlan(info);
  const range =
    info.subgroupSizes === null
      ? `fixed ${info.subgroupSize}`
      : info.subgroupSizes.min === info.subgroupSizes.max
        ? `fixed ${info.subgroupSizes.min}`
        : `${info.subgroupSizes.min}-${info.subgroupSizes.max}`;
  return `${KERNEL_FAMILIES.map((f) => `${f} ${plan[f].size}${plan[f].required ? '' : " (driver's)"}`).join(' · ')} (device: ${range})`;
}

const checked = new WeakMap<Device, true>();

/**
 * Checks, once per device, the subgroup layout the kernels rely on, at every size the plan runs
 * kernels at, for the workgroup sizes they use (multiples of the subgroup size up to 1,024
 * invocations). Throws a VulkanError naming what differs.
 */
export function checkSubgroupLayout(device: Device): void {
  if (checked.has(device)) return;
  const plan = subgroupPlan(device.info);
  const choices = new Map(KERNEL_FAMILIES.map((f) => [`${plan[f].size}/${plan[f].required}`, plan[f]]));
  for (const c of choices.values()) {
    for (const n of [128, Math.min(1024, device.info.maxComputeWorkGroupInvocations)]) {
      if (n % c.size !== 0 || n * 24 > device.info.maxStorageBufferRange) continue;
      const bad = layoutMismatch(probeSubgroups(device, n, c.required ? c.size : undefined), expectedLayout(n, c.size));
      if (bad !== undefined) {
        throw new VulkanError(
          `${device.info.name} (${device.info.driverName} ${device.info.driverInfo}) lays out subgroups of ${c.size} in a workgroup of ${n} in a way unicorn's kernels do not support: ${bad}`,
          undefined,
          {
            hint: 'update the GPU driver; `unicorn doctor` shows the device and driver; please report this device',
          },
        );
      }
    }
  }
  checked.set(device, true);
}
