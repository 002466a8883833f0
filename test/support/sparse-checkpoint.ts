/**
 * Writes a full-size checkpoint whose data sections are holes (sparse files): real headers, real
 * sizes, almost no disk. For header-only code paths (inspect, binding) at real model sizes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INDEX_FILE } from '../../src/engine/formats/checkpoint.js';
import type { DType } from '../../src/engine/formats/dtypes.js';
import { encodeHeader, tensorByteLength } from '../../src/engine/formats/safetensors-writer.js';

export function writeSparseCheckpoint(dir: string, tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[], shardBytes: number): number {
  const shards: (typeof tensors)[number][][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const b = tensorByteLength(t);
    if (size > 0 && size + b > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(t);
    size += b;
  }
  const weightMap: Record<string, string> = {};
  shards.forEach((part, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const header = encodeHeader(part);
    const fd = fs.openSync(path.join(dir, file), 'w');
    fs.writeSync(fd, header);
    fs.ftruncateSync(fd, header.byteLength + part.reduce((a, t) => a + tensorByteLength(t), 0));
    fs.closeSync(fd);
    for (const t of part) weightMap[t.name] = file;
  });
  fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return shards.length;
}
