// How close the prefill attention kernels come to an f64 reference (attentionRef over the same f16 cache,
// Q not rounded), on Gaussian data: the plain kernel, and flash attention with Q and P in f16 and in two
// f16 parts each. Relative rms error and the largest absolute one, at query scales 1, 4 and 16.
//   node scripts/device/attention-precision.mjs [head_dim] [tokens] [--grow: keys that grow along the sequence]
import { FlashAttention, flashShared, flashTiles } from '../../dist/src/engine/kernels/attention-coop.js';
import { Ops } from '../../dist/src/engine/kernels/ops.js';
import { attentionRef, roundF16 } from '../../dist/src/engine/kernels/reference.js';
import { f32ToF16 } from '../../dist/src/engine/formats/dtypes.js';
import { Device } from '../../dist/src/engine/vulkan/device.js';
import { Allocator } from '../../dist/src/engine/vulkan/memory.js';
import { Commands } from '../../dist/src/engine/vulkan/commands.js';
import { download, uploadNew } from '../../dist/src/engine/vulkan/transfer.js';

const [d, tokens] = [Number(process.argv[2] ?? 128), Number(process.argv[3] ?? 512)];
const grow = process.argv.includes('--grow');
const [heads, kvHeads] = [8, 2];
const device = Device.open();
const alloc = new Allocator(device, { mapDeviceMemory: false });
const cmds = new Commands(device);
const ops = new Ops(device);
const half = (x) => new Uint8Array(Uint16Array.from(x, (v) => f32ToF16(v)).buffer);
let seed = 1;
const uniform = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const gauss = () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
const positions = Array.from({ length: tokens }, (_, i) => i);
const shape = { tokens, heads, kvHeads, headDim: d, capacity: tokens, window: 0, scale: 1 / Math.sqrt(d), softcap: 0 };
console.log(`${device.info.name}: head_dim ${d}, ${tokens} tokens, ${heads} heads over ${kvHeads}${grow ? ', growing keys' : ''}`);
for (const qScale of [1, 4, 16]) {
  const q = Float32Array.from({ length: tokens * heads * d }, () => gauss() * qScale);
  const k = roundF16(Float32Array.from({ length: kvHeads * tokens * d }, (_, i) => gauss() * (grow ? 1 + (Math.floor(i / d) % tokens) / 8 : 1)));
  const v = roundF16(Float32Array.from({ length: kvHeads * tokens * d }, () => gauss()));
  const want = attentionRef(q, k, v, positions, { heads, kvHeads, d, capacity: tokens, window: 0, scale: shape.scale, softcap: 0 });
  const bufs = [q, half(k), half(v), Uint32Array.from(positions), new Float32Array(q.length)].map((a) =>
    uploadNew(alloc, cmds, a instanceof Uint8Array ? a : new Uint8Array(a.buffer)),
  );
  const measure = (record) => {
    cmds.begin();
    record();
    cmds.submitAndWait();
    const got = new Float32Array(q.length);
    download(alloc, cmds, bufs[4], new Uint8Array(got.buffer));
    let [e2, w2, worst] = [0, 0, 0];
    for (let i = 0; i < got.length; i++) {
      e2 += (got[i] - want[i]) ** 2;
      w2 += want[i] ** 2;
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
    return `${Math.sqrt(e2 / w2).toExponential(2)} rms, ${worst.toExponential(2)} max`;
  };
  const line = [`queries x${qScale}: plain ${measure(() => ops.attention(cmds, bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], shape))}`];
  const base = flashTiles(device.info, d);
  for (const split of [false, true]) {
    const t =
      base === null
        ? null
        : [base, { ...base, nsg: 2 }, { ...base, nsg: 1 }]
            .map((x) => ({ ...x, split }))
            .find((x) => flashShared(x, d) <= device.info.maxComputeSharedMemorySize);
    if (t === undefined || t === null) continue;
    const fa = new FlashAttention(device, alloc, { kind: 'coop', checked: true, tiles: t });
    line.push(`flash${split ? ' in two parts' : ''} ${measure(() => fa.record(cmds, bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], shape, t))}`);
  }
  console.log(line.join(' · '));
  for (const b of bufs) alloc.free(b);
}
device.destroy();
