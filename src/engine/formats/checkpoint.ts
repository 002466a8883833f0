/**
 * A checkpoint: one safetensors file, or shards tied together by model.safetensors.index.json.
 * Opening reads headers only. Each tensor name resolves to exactly one shard; any disagreement
 * between the index and the shards is an error naming both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsError } from '../errors.js';
import { kindOf, pathProblem, readRegularFile } from './files.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';

export const INDEX_FILE = 'model.safetensors.index.json';

export interface CheckpointTensor extends TensorInfo {
  readonly file: SafetensorsFile;
}

export class Checkpoint {
  /** Directory holding the checkpoint (config.json and friends live here). */
  readonly dir: string;
  readonly files: readonly SafetensorsFile[];
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;

  private constructor(dir: string, files: SafetensorsFile[], tensors: Map<string, CheckpointTensor>) {
    this.dir = dir;
    this.files = files;
    this.tensors = tensors;
  }

  /** Opens a model directory or a single .safetensors file. */
  static open(target: string): Checkpoint {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(target);
    } catch (e) {
      throw new SafetensorsError(target, pathProblem(e));
    }
    if (stat.isFile()) return Checkpoint.fromFiles(path.dirname(target), [openShard(target)]);
    if (!stat.isDirectory()) throw new SafetensorsError(target, `is ${kindOf(stat)}, not a .safetensors file or a model directory`);
    const index = path.join(target, INDEX_FILE);
    if (fs.existsSync(index)) return Checkpoint.fromIndex(target, index);
    const single = path.join(target, 'model.safetensors');
    if (fs.existsSync(single)) return Checkpoint.fromFiles(target, [openShard(single)]);
    let names: string[];
    try {
      names = fs.readdirSync(target);
    } catch (e) {
      throw new SafetensorsError(target, pathProblem(e));
    }
    const found = names.filter((f) => f.endsWith('.safetensors')).sort();
    if (found.length === 1) return Checkpoint.fromFiles(target, [openShard(path.join(target, found[0]!))]);
    if (found.length > 1) {
      throw new SafetensorsError(target, `holds ${found.length} .safetensors files but no ${INDEX_FILE} to say how they fit together`);
    }
    throw new SafetensorsError(target, 'holds no .safetensors file', undefined, {
      hint: 'point unicorn at a Hugging Face model directory (config.json + *.safetensors) or at a .safetensors file',
    });
  }

  private static fromFiles(dir: string, files: SafetensorsFile[]): Checkpoint {
    const tensors = new Map<string, CheckpointTensor>();
    for (const file of files) {
      for (const t of file.tensors) {
        const prev = tensors.get(t.name);
        if (prev !== undefined) {
          closeAll(files);
          throw new SafetensorsError(file.path, `also stored in ${path.basename(prev.file.path)}`, t.name);
        }
        tensors.set(t.name, { ...t, file });
      }
    }
    return new Checkpoint(dir, files, tensors);
  }

  private static fromIndex(dir: string, indexPath: string): Checkpoint {
    let weightMap: Record<string, unknown>;
    try {
      const json = JSON.parse(readRegularFile(indexPath)) as { weight_map?: unknown };
      if (json === null || typeof json !== 'object' || typeof json.weight_map !== 'object' || json.weight_map === null || Array.isArray(json.weight_map)) {
        throw new Error('no weight_map object');
      }
      weightMap = json.weight_map as Record<string, unknown>;
    } catch (e) {
      throw new SafetensorsError(indexPath, `is not a valid index (${e instanceof Error ? e.message : String(e)})`);
    }
    const shardNames = new Set<string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string' || shard !== path.basename(shard) || !shard.endsWith('.safetensors')) {
        throw new SafetensorsError(indexPath, `names shard ${JSON.stringify(shard)}, which is not a .safetensors file name in this directory`, name);
      }
      shardNames.add(shard);
    }
    const files: SafetensorsFile[] = [];
    const byShard = new Map<string, SafetensorsFile>();
    try {
      for (const shard of [...shardNames].sort()) {
        const p = path.join(dir, shard);
        if (!fs.existsSync(p)) {
          throw new SafetensorsError(p, `is missing (listed in ${INDEX_FILE})`, undefined, { hint: 'download the missing shard again' });
        }
        const f = openShard(p);
        files.push(f);
        byShard.set(shard, f);
      }
      const tensors = new Map<string, CheckpointTensor>();
      for (const [name, shard] of Object.entries(weightMap)) {
        const file = byShard.get(shard as string)!;
        if (!file.has(name)) {
          const where = files.find((f) => f.has(name));
          throw new SafetensorsError(
            indexPath,
            where === undefined
              ? `is listed in ${shard as string} but is in no shard`
              : `is listed in ${shard as string} but stored in ${path.basename(where.path)}`,
            name,
          );
        }
        tensors.set(name, { ...file.tensor(name), file });
      }
      for (const f of files) {
        for (const t of f.tensors) {
          if (!Object.hasOwn(weightMap, t.name)) throw new SafetensorsError(f.path, `is stored here but not listed in ${INDEX_FILE}`, t.name);
        }
      }
      return new Checkpoint(dir, files, tensors);
    } catch (e) {
      closeAll(files);
      throw e;
    }
  }

  get totalBytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.byteLength;
    return n;
  }

  tensor(name: string): CheckpointTensor {
    const t = this.tensors.get(name);
    if (t === undefined) throw new SafetensorsError(this.dir, 'not in this checkpoint', name);
    return t;
  }

  close(): void {
    closeAll(this.files);
  }
}

/**
 * Opens one safetensors file, refusing anything but a regular file first: opening a FIFO for reading
 * blocks until something writes to it, and a device has no header to read.
 */
function openShard(file: string): SafetensorsFile {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new SafetensorsError(file, pathProblem(e));
  }
  if (!st.isFile()) throw new SafetensorsError(file, `is ${kindOf(st)}, not a .safetensors file`);
  return SafetensorsFile.open(file);
}

function closeAll(files: readonly SafetensorsFile[]): void {
  for (const f of files) f.close();
}
