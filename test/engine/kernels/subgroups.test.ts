/**
 * Subgroups as the kernels assume them, and the size each kernel family runs at. The probe shader
 * (shaders/subgroup_probe.comp) is also the minimal proof of a lavapipe bug: in Mesa 22.3 a workgroup
 * that is not a multiple of the subgroup size reports gl_NumSubgroups rounded down (12 invocations in
 * subgroups of 8: 1, not 2), while the subgroups themselves are right; Mesa 26.1 reports 2. A kernel
 * that sums per-subgroup partials over gl_NumSubgroups then drops the last one: unicorn's rope_store
 * did (q/k head norms at head_dim 48, 12 invocations), which is why it now uses no subgroup operation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  KERNEL_FAMILIES,
  checkSubgroupLayout,
  describeSubgroups,
  expectedLayout,
  layoutMismatch,
  probeSubgroups,
  subgroupPlan,
} from '../../../src/engine/kernels/subgroups.js';
import type { DeviceInfo } from '../../../src/engine/vulkan/device.js';
import { KERNELS } from '../../../src/engine/kernels/table.js';
import { kernelFor } from '../../../src/engine/vulkan/pipeline.js';
import { openGpu } from '../../support/gpu.js';

const gpu = openGpu();
after(() => gpu.device.destroy());
const info = gpu.device.info;
const size = info.subgroupSize;

describe(`subgroups on ${info.name} (${info.driverInfo}), size ${size}`, () => {
  test('workgroups that are multiples of the subgroup size: full subgroups of consecutive invocations, counted right', () => {
    for (const n of [size, 128, Math.min(1024, info.maxComputeWorkGroupInvocations)]) {
      assert.equal(layoutMismatch(probeSubgroups(gpu.device, n), expectedLayout(n, size)), undefined, `workgroup of ${n}`);
    }
    checkSubgroupLayout(gpu.device);
  });

  test('a workgroup that is not a multiple: a partial last subgroup, right in everything but, on Mesa 22, gl_NumSubgroups', () => {
    for (const n of [size + size / 2, 2 * size + size / 2]) {
      const got = probeSubgroups(gpu.device, n);
      const want = expectedLayout(n, size);
      const mesa22Bug = /Mesa 22\./.test(info.driverInfo) && info.type === 'cpu';
      const counted = got.map((r) => r.numSubgroups);
      // The known bug, exactly as seen, or the right count: nothing else.
      assert.ok(
        counted.every((c) => c === Math.ceil(n / size)) || (mesa22Bug && counted.every((c) => c === Math.floor(n / size))),
        `workgroup of ${n}: gl_NumSubgroups ${counted[0]}`,
      );
      assert.equal(
        layoutMismatch(
          got.map((r) => ({ ...r, numSubgroups: want[0]!.numSubgroups })),
          want,
        ),
        undefined,
        `workgroup of ${n}`,
      );
    }
  });

  test('a pipeline may ask for a subgroup size the device allows, and is refused one it does not', () => {
    if (info.subgroupSizes !== null) {
      const asked = info.subgroupSizes.max;
      assert.equal(layoutMismatch(probeSubgroups(gpu.device, 128, asked), expectedLayout(128, asked)), undefined);
    }
    const bad = (info.subgroupSizes?.max ?? size) * 4;
    assert.throws(
      () => kernelFor(gpu.device, KERNELS.subgroup_probe, {}, { workgroup: bad }, { subgroupSize: bad }),
      new RegExp(`subgroup_probe: subgroup size ${bad} asked for, ${info.name.replace(/[()]/g, '.')} runs`),
    );
  });

  test(`the plan on this device: ${describeSubgroups(info)}`, () => {
    const plan = subgroupPlan(info);
    for (const f of KERNEL_FAMILIES) assert.ok(plan[f].size >= 4 && plan[f].size <= 128 && (plan[f].size & (plan[f].size - 1)) === 0);
  });
});

describe('which subgroup size each kernel family asks for', () => {
  const like = (o: Partial<DeviceInfo>): DeviceInfo => ({ ...info, ...o });
  test("AMD RDNA (32 to 64, the Radeon 780M): matrix x vector at 64, decode attention at 32, the rest the driver's 64", () => {
    const p = subgroupPlan(like({ vendorId: 0x1002, subgroupSize: 64, subgroupSizes: { min: 32, max: 64, fullSubgroups: true } }), '');
    assert.deepEqual(
      [p.matvec.size, p.matvec.required, p.attention.size, p.attention.required, p.norm.size, p.norm.required, p.sampling.size],
      [64, true, 32, true, 64, false, 64],
    );
  });
  test("AMD GCN (64 only), NVIDIA (32 only), a device without size control: the driver's size everywhere", () => {
    for (const d of [
      { vendorId: 0x1002, subgroupSize: 64, subgroupSizes: { min: 64, max: 64, fullSubgroups: true } },
      { vendorId: 0x10de, subgroupSize: 32, subgroupSizes: { min: 32, max: 32, fullSubgroups: true } },
      { vendorId: 0x1002, subgroupSize: 64, subgroupSizes: null },
    ]) {
      const p = subgroupPlan(like(d), '');
      for (const f of KERNEL_FAMILIES) assert.deepEqual([p[f].size, p[f].required], [d.subgroupSize, false], `${JSON.stringify(d)} ${f}`);
    }
  });
  test('Intel (8 to 32): matrix x vector at 16', () => {
    const p = subgroupPlan(like({ vendorId: 0x8086, subgroupSize: 32, subgroupSizes: { min: 8, max: 32, fullSubgroups: true } }), '');
    assert.deepEqual([p.matvec.size, p.matvec.required, p.attention.size, p.attention.required], [16, true, 32, false]);
  });
  test('UNICORN_SUBGROUP_SIZE asks for one size everywhere, and is refused where the device cannot run it', () => {
    const amd = like({ vendorId: 0x1002, subgroupSize: 64, subgroupSizes: { min: 32, max: 64, fullSubgroups: true } });
    for (const f of KERNEL_FAMILIES) assert.deepEqual([subgroupPlan(amd, '32')[f].size, subgroupPlan(amd, '32')[f].required], [32, true]);
    assert.throws(() => subgroupPlan(amd, '16'), /UNICORN_SUBGROUP_SIZE=16: .* runs compute pipelines at subgroup sizes 32 to 64/);
    assert.throws(
      () => subgroupPlan(like({ subgroupSizes: null, subgroupSize: 8 }), '8x'),
      /UNICORN_SUBGROUP_SIZE=8x: .* subgroup size 8 only \(no VK_EXT_subgroup_size_control\)/,
    );
  });
});
