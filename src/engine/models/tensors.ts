/**
 * Checkpoint tensor names -> one canonical naming, and the tensors (with shapes) a ModelSpec needs.
 * Canonical names are the Hugging Face text-model names without their wrapper prefix:
 * `embed_tokens.weight`, `norm.weight`, `lm_head.weight`, `layers.N.self_attn.q_proj.weight`, ...
 */
import { CheckpointError } from '../errors.js';
import type { Checkpoint, CheckpointTensor } from '../formats/checkpoint.js';
import { FLOAT_WEIGHT_DTYPES } from '../formats/dtypes.js';
import { type QuantizedFormat, type WeightFormat, floatFormatOf, formatInfo, storedShape } from '../kernels/weight-formats.js';
import { companionOf } from '../quant/file-format.js';
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

/** A quantized matrix's second tensor (docs/formats.md, kernels/weight-formats.ts): INT8 row scales or INT4 group params. */
export interface QuantInfo {
  readonly kind: QuantizedFormat;
  /** The group size of a format with params per group (INT4); 0 for params per row. */
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
  const companions = new Map<string, { kind: QuantizedFormat; tensor: CheckpointTensor }>();
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

/** The format a bound tensor is stored in (kernels/weight-formats.ts): its quantized one, or its float dtype's. */
export function tensorFormat(t: BoundTensor): WeightFormat | undefined {
  return t.quant?.kind ?? floatFormatOf(t.dtype);
}

/**
 * Checks a quantized pair against the matrix shape the config needs, as the format's row of the
 * weight-format table lays them out (docs/formats.md): the values' dtype and stored shape, and the
 * params' dtype and shape (one entry per row, or per group of a size the format allows).
 */
function checkQuantized(dir: string, name: string, t: CheckpointTensor, want: readonly number[], c: { kind: QuantizedFormat; tensor: CheckpointTensor }): QuantInfo {
  const bad = (why: string) => new CheckpointError(`${dir}: quantized tensor ${name}: ${why}`, { hint: 'the file is damaged or was not written by unicorn quantize' });
  if (want.length !== 2) throw bad('only matrices are stored quantized');
  const [rows, cols] = [want[0]!, want[1]!];
  const f = formatInfo(c.kind);
  const stored = storedShape(c.kind, rows, cols);
  if (t.dtype !== f.dtype || !sameShape(t.shape, stored)) throw bad(`${f.label} values must be ${f.dtype} [${stored.join(', ')}], found ${t.dtype} [${t.shape.join(', ')}]`);
  const p = c.tensor;
  const layout = f.params!;
  if (layout.per === 'row') {
    if (p.dtype !== layout.dtype || !sameShape(p.shape, [rows])) throw bad(`${f.label} ${layout.noun} must be ${layout.dtype} [${rows}], found ${p.dtype} [${p.shape.join(', ')}]`);
    return { kind: c.kind, group: 0, params: p };
  }
  const groups = p.shape[1] ?? 0;
  const group = groups > 0 ? cols / groups : 0;
  const allowed = layout.groups ?? [];
  if (p.dtype !== layout.dtype || p.shape.length !== 2 || p.shape[0] !== rows || !allowed.includes(group)) {
    throw bad(`${f.label} ${layout.noun} must be ${layout.dtype} [${rows}, ${cols} / group] with a group of ${allowed.join(', ')}; found ${p.dtype} [${p.shape.join(', ')}]`);
  }
  return { kind: c.kind, group, params: p };
}
