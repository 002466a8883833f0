/** The Vulkan part of the doctor's snapshot: devices, and a self-test dispatch on the chosen one. */
import { f32ArrayToBf16, bf16ToF32 } from '../formats/dtypes.js';
import { MatVec, singleMatrix } from '../kernels/matvec.js';
import { matvecRef } from '../quant/quantize.js';
import { deviceCopyRate, timeBest } from '../vulkan/bandwidth.js';
import { Commands } from '../vulkan/commands.js';
import { Device, chooseDevice, listDevices } from '../vulkan/device.js';
import { Allocator } from '../vulkan/memory.js';
import { download, uploadNew } from '../vulkan/transfer.js';
import type { SelfTest, Snapshot } from './probe.js';

/** A bf16 matrix x vector against the CPU, then its GB/s against a copy on the same device. */
function selfTest(want?: string): SelfTest {
  const device = Device.open(want);
  try {
    const alloc = new Allocator(device);
    const cmds = new Commands(device);
    const cpu = device.info.type === 'cpu';
    const [rows, cols] = cpu ? [512, 1024] : [4096, 4096];
    let a = 1;
    const w = Float32Array.from({ length: rows * cols }, () => {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      return (a / 2 ** 32 - 0.5) * 0.1;
    });
    const x = Float32Array.from({ length: cols }, (_, i) => Math.sin(i));
    const h = f32ArrayToBf16(w);
    const m = singleMatrix('bf16', rows, cols, 0, uploadNew(alloc, cmds, new Uint8Array(h.buffer), 'self-test weights'), null);
    const xb = uploadNew(alloc, cmds, new Uint8Array(x.buffer), 'self-test x');
    const yb = alloc.alloc(rows * 4, 'self-test y');
    const mv = new MatVec(device, alloc);
    cmds.begin();
    mv.record(cmds, m, xb, yb);
    cmds.submitAndWait();
    const got = new Float32Array(rows);
    download(alloc, cmds, yb, new Uint8Array(got.buffer));
    const ref = matvecRef(Float32Array.from(h, bf16ToF32), x, rows, cols);
    let worst = 0;
    for (let i = 0; i < rows; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!) / (1e-3 + Math.abs(ref[i]!)));
    const ok = worst < 1e-3;
    const t = timeBest(cmds, () => mv.record(cmds, m, xb, yb), cpu ? 2 : 50, 3);
    const matvecGbps = (rows * cols * 2) / t / 1e9;
    const copyGbps = deviceCopyRate(device, alloc);
    return {
      device: device.info.name,
      ok,
      detail: `bf16 ${rows}x${cols} matrix x vector against the CPU: largest relative error ${worst.toExponential(1)}`,
      matvecGbps,
      copyGbps,
    };
  } catch (e) {
    return { device: 'unknown', ok: false, detail: e instanceof Error ? e.message : String(e), matvecGbps: null, copyGbps: null };
  } finally {
    device.destroy();
  }
}

export function probeVulkan(opts: { selfTest: boolean; gpu?: string }): Snapshot['vulkan'] {
  try {
    const devices = listDevices();
    const chosen = devices.length > 0 ? chooseDevice(devices, opts.gpu).index : null;
    return { loader: true, error: null, devices, chosen, selfTest: opts.selfTest && chosen !== null ? selfTest(opts.gpu) : null };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { loader: !/libvulkan|loader/i.test(msg), error: msg, devices: [], chosen: null, selfTest: null };
  }
}
