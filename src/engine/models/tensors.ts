/**
 * Checkpoint tensor names -> one canonical naming, and the tensors (with shapes) a ModelSpec needs.
 * Canonical names are the Hugging Face text-model names without their wrapper prefix:
 * `embed_tokens.weight`, `norm.weight`, `lm_head.weight`, `layers.N.self_attn.q_proj.weight`, ...
 */
import { CheckpointError } from '../errors.js';
import type { Checkpoint, CheckpointTensor } from '../formats/checkpoint.js';
import { FLOAT_WEIGHT_DTYPES } from '../formats/dtypes.js';
import { companionOf } from '../quant/file-format.js';
import { INT4_GROUPS } from '../quant/layouts.js';
import { ARCHITECTURES } from './architectures.js';
import type { ModelSpec } from './spec.js';
import { modelTensors } from './steps.js';

export type NameClass =
  | { readonly kind: 'model'; readonly canonical: string }
  | { readonly kind: 'skipped'; readonly reason: 'vision' | 'derived' };

/** Wrapper prefixes of the text model, longest first. */
const TEXT_PREFIXES = ['language_model.model.', 'model.language_model.', 'model.'];
const LM_HEADS = ['lm_head.weight', 'language_model.lm_head.weight', 'model.lm_head.weight'];
const VISION = /^(model\.)?(vision_tower|vision_model|multi_modal_projector)\./;

export function classifyName(name: string): NameClass | undefined {
  if (VISION.test(name)) return { kind: 'skipped', reason: 'vision' };
  if (LM_HEADS.includes(name)) return { kind: 'model', canonical: 'lm_head.weight' };
  for (const p of TEXT_PREFIXES) {
    if (name.startsWith(p)) {
      const rest = name.slice(p.length);
      // Precomputed rotary frequencies in old Llama checkpoints: unicorn derives them from the spec.
      if (rest.endsWith('.rotary_emb.inv_freq')) return { kind: 'skipped', reason: 'derived' };
      return { kind: 'model', canonical: rest };
    }
  }
  return undefined;
}

/**
 * Every tensor the forward pass reads, with its shape ([out, in] for projections), in the order the
 * pass reads them: from the steps the architecture records (steps.ts), the one list of names.
 */
export function expectedTensors(spec: ModelSpec): Map<string, readonly number[]> {
  return modelTensors(ARCHITECTURES[spec.family], spec);
}

export interface SkippedTensor {
  readonly name: string;
  readonly reason: 'vision' | 'derived' | 'tied';
  readonly byteLength: number;
}

/** A quantized matrix's second tensor (docs/formats.md): INT8 row scales or INT4 group params. */
export interface QuantInfo {
  readonly kind: 'q8' | 'q4';
  /** INT4 group size (0 for INT8). */
  readonly group: number;
  readonly params: CheckpointTensor;
}

export interface BoundTensor extends CheckpointTensor {
  /** Present when the tensor is stored quantized. */
  readonly quant?: QuantInfo;
}

/** A checkpoint checked against its spec: every needed tensor found once, with the right shape. */
export interface BoundCheckpoint {
  readonly tensors: ReadonlyMap<string, BoundTensor>;
  readonly skipped: readonly SkippedTensor[];
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function bindCheckpoint(spec: ModelSpec, ckpt: Checkpoint): BoundCheckpoint {
  const expected = expectedTensors(spec);
  const tensors = new Map<string, BoundTensor>();
  const skipped: SkippedTensor[] = [];
  const unexpected: string[] = [];
  // Quantized matrices come as a pair: the values under the original name, and a companion.
  const companions = new Map<string, { kind: 'q8' | 'q4'; tensor: CheckpointTensor }>();
  for (const [name, t] of ckpt.tensors) {
    const c = companionOf(name);
    if (c !== null) companions.set(c.main, { kind: c.kind, tensor: t });
  }
  const used = new Set<string>();
  for (const [name, t] of ckpt.tensors) {
    if (companionOf(name) !== null) continue;
    const c = classifyName(name);
    if (c?.kind === 'skipped') {
      skipped.push({ name, reason: c.reason, byteLength: t.byteLength });
      continue;
    }
    if (c !== undefined && c.canonical === 'lm_head.weight' && spec.tieWordEmbeddings) {
      skipped.push({ name, reason: 'tied', byteLength: t.byteLength });
      continue;
    }
    const want = c === undefined ? undefined : expected.get(c.canonical);
    if (c === undefined || want === undefined) {
      unexpected.push(name);
      continue;
    }
    if (tensors.has(c.canonical)) throw new CheckpointError(`${ckpt.dir}: tensor ${c.canonical} is stored twice (as ${name} and another name)`);
    const companion = companions.get(name);
    if (companion !== undefined) used.add(name);
    const quant = companion === undefined ? undefined : checkQuantized(ckpt.dir, name, t, want, companion);
    if (quant === undefined) {
      if (!sameShape(t.shape, want)) {
        throw new CheckpointError(`${ckpt.dir}: tensor ${name} has shape [${t.shape.join(', ')}], but the config needs [${want.join(', ')}]`, {
          hint: 'config.json and the weights do not belong together',
        });
      }
      if (!FLOAT_WEIGHT_DTYPES.includes(t.dtype)) {
        throw new CheckpointError(`${ckpt.dir}: tensor ${name} is ${t.dtype}; unicorn reads weights stored as ${FLOAT_WEIGHT_DTYPES.join(', ')}, or quantized by unicorn quantize`);
      }
    }
    tensors.set(c.canonical, quant === undefined ? t : { ...t, quant });
  }
  const orphans = [...companions.keys()].filter((m) => !used.has(m));
  if (orphans.length > 0) throw new CheckpointError(`${ckpt.dir}: quantization parameters without their matrix: ${orphans.slice(0, 3).join(', ')}`);
  if (unexpected.length > 0) {
    throw new CheckpointError(`${ckpt.dir}: ${unexpected.length} tensor(s) that a ${spec.architecture} does not have, e.g. ${unexpected.slice(0, 3).join(', ')}`, {
      hint: 'the checkpoint is a different architecture or variant than config.json says',
    });
  }
  const missing = [...expected.keys()].filter((k) => !tensors.has(k));
  if (missing.length > 0) {
    throw new CheckpointError(`${ckpt.dir}: ${missing.length} tensor(s) missing, e.g. ${missing.slice(0, 3).join(', ')} with shape [${expected.get(missing[0]!)!.join(', ')}]`, {
      hint: 'a shard may be incomplete: compare with the model\'s published file list',
    });
  }
  return { tensors, skipped };
}

/** Checks a quantized pair against the matrix shape the config needs (docs/formats.md). */
function checkQuantized(dir: string, name: string, t: CheckpointTensor, want: readonly number[], c: { kind: 'q8' | 'q4'; tensor: CheckpointTensor }): QuantInfo {
  const bad = (why: string) => new CheckpointError(`${dir}: quantized tensor ${name}: ${why}`, { hint: 'the file is damaged or was not written by unicorn quantize' });
  if (want.length !== 2) throw bad('only matrices are stored quantized');
  const [rows, cols] = [want[0]!, want[1]!];
  const p = c.tensor;
  if (c.kind === 'q8') {
    if (t.dtype !== 'I8' || !sameShape(t.shape, want)) throw bad(`INT8 values must be I8 [${rows}, ${cols}], found ${t.dtype} [${t.shape.join(', ')}]`);
    if (p.dtype !== 'F32' || !sameShape(p.shape, [rows])) throw bad(`INT8 scales must be F32 [${rows}], found ${p.dtype} [${p.shape.join(', ')}]`);
    return { kind: 'q8', group: 0, params: p };
  }
  if (t.dtype !== 'U8' || !sameShape(t.shape, [rows, cols / 2])) throw bad(`INT4 values must be U8 [${rows}, ${cols / 2}], found ${t.dtype} [${t.shape.join(', ')}]`);
  const groups = p.shape[1] ?? 0;
  const group = groups > 0 ? cols / groups : 0;
  if (p.dtype !== 'U32' || p.shape.length !== 2 || p.shape[0] !== rows || !(INT4_GROUPS as readonly number[]).includes(group)) {
    throw bad(`INT4 params must be U32 [${rows}, ${cols} / group] with a group of ${INT4_GROUPS.join(', ')}; found ${p.dtype} [${p.shape.join(', ')}]`);
  }
  return { kind: 'q4', group, params: p };
}
