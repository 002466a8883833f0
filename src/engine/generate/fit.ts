/**
 * Does a model fit the GPU? Weights as stored plus the KV cache at the context, against what the
 * device's heaps offer (the budget of VK_EXT_memory_budget where the driver reports it). When not,
 * the error says what would fit, from the same estimates `unicorn inspect` prints.
 */
import { UnicornError } from '../errors.js';
import { type KvCacheType, kvCacheBytes, kvCacheRefusal, memoryPlan } from '../models/memory.js';
import type { ModelFiles } from '../models/model-dir.js';
import type { DeviceInfo } from '../vulkan/device.js';

export class DoesNotFitError extends UnicornError {}

const GB = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(2)} MB`);

/** Bytes the GPU heaps can give: every heap (device-local, and host memory the GPU reaches). */
export function gpuCapacity(info: DeviceInfo): number {
  return info.heaps.reduce((a, h) => a + (h.budget ?? h.size), 0);
}

/**
 * Throws a DoesNotFitError unless the weights and a `kvType` cache at `ctx` fit the device. Its hint
 * lists what would, each with the total it needs, all at the asked cache type unless said: a
 * quantized scheme, `--kv-cache q8` (where the cache is f16 and the heads take q8), a shorter
 * `--ctx`.
 */
export function checkFits(model: ModelFiles, info: DeviceInfo, ctx: number, kvType: KvCacheType = 'f16'): void {
  const weights = [...model.bound.tensors.values()].reduce((a, t) => a + t.byteLength + (t.quant?.params.byteLength ?? 0), 0);
  const kv = kvCacheBytes(model.spec, ctx, kvType);
  const need = weights + kv;
  const have = gpuCapacity(info);
  // Leave room for activations, staging and the driver: 5% and 256 MB.
  const usable = have * 0.95 - 256e6;
  if (need <= usable) return;
  const options: string[] = [];
  for (const row of memoryPlan(model.spec, ctx, 64, kvType)) {
    if (row.scheme !== 'bf16' && row.total < usable && row.weights < weights)
      options.push(`${row.scheme} (${GB(row.total)}: unicorn quantize --scheme ${row.scheme})`);
  }
  const q8 = weights + kvCacheBytes(model.spec, ctx, 'q8');
  if (kvType === 'f16' && q8 <= usable && kvCacheRefusal(model.spec, 'q8') === undefined) options.push(`--kv-cache q8 (${GB(q8)})`);
  for (const c of [32768, 16384, 8192, 4096, 2048]) {
    if (c < ctx && weights + kvCacheBytes(model.spec, c, kvType) <= usable) {
      options.push(`--ctx ${c} (${GB(weights + kvCacheBytes(model.spec, c, kvType))})`);
      break;
    }
  }
  throw new DoesNotFitError(
    `${model.dir} needs ${GB(need)} (weights ${GB(weights)} + KV cache ${GB(kv)} at --ctx ${ctx}${kvType === 'f16' ? '' : `, ${kvType}`}) and ${info.name} offers ${GB(have)} across its memory heaps`,
    {
      hint:
        options.length > 0
          ? `what fits: ${options.join(', ')}`
          : 'a smaller model; on an APU, a larger UMA carve-out or GTT size (unicorn inspect shows the plan)',
    },
  );
}
