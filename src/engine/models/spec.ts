/**
 * ModelSpec: every number a forward pass needs, derived once from config.json (and
 * generation_config.json, tokenizer_config.json) for the families unicorn runs. Two config formats
 * are read: the published one (transformers 4.4x-4.5x: sparse text_config, rope_theta/rope_scaling,
 * defaults implied) and transformers 5 (layer_types, rope_parameters, every field written).
 */
import { ConfigError } from '../errors.js';

export type Family = 'gemma3' | 'qwen2' | 'llama';
export type Activation = 'gelu_tanh' | 'silu';
export type AttentionKind = 'sliding' | 'full';

export type RopeScaling =
  | { readonly kind: 'none' }
  | { readonly kind: 'linear'; readonly factor: number }
  | {
      readonly kind: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

export interface Rope {
  readonly theta: number;
  readonly scaling: RopeScaling;
}

export interface LayerSpec {
  readonly index: number;
  readonly attention: AttentionKind;
  /** Keys visible to a query: the last `window` positions (itself included); null = all. */
  readonly window: number | null;
  readonly rope: Rope;
}

export interface ModelSpec {
  readonly family: Family;
  /** The Hugging Face class named in config.json, e.g. Gemma3ForConditionalGeneration. */
  readonly architecture: string;
  /** True when the checkpoint wraps the text model with a vision tower (skipped by unicorn). */
  readonly multimodal: boolean;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  /** RMSNorm multiplies by (offset + weight): 1 for Gemma, 0 otherwise. */
  readonly normWeightOffset: 0 | 1;
  readonly activation: Activation;
  /** Attention scores are scaled by queryPreAttnScalar^-1/2 (head_dim unless Gemma says otherwise). */
  readonly queryPreAttnScalar: number;
  readonly attnLogitSoftcap: number | null;
  readonly finalLogitSoftcap: number | null;
  readonly tieWordEmbeddings: boolean;
  /** Biases on the q, k and v projections (Qwen 2). */
  readonly qkvBias: boolean;
  /** RMSNorm on each query and key head (Gemma 3). */
  readonly qkNorm: boolean;
  /** Gemma's four norms per layer: post-attention, pre- and post-feedforward. */
  readonly sandwichNorms: boolean;
  /** Embeddings are multiplied by this (sqrt(hidden) for Gemma, 1 otherwise). */
  readonly embeddingScale: number;
  readonly slidingWindow: number | null;
  readonly layers: readonly LayerSpec[];
  readonly maxPositionEmbeddings: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  readonly chatTemplate: string | null;
}

/** The files a spec is derived from, already parsed. */
export interface ConfigFiles {
  readonly config: unknown;
  readonly generationConfig?: unknown;
  readonly tokenizerConfig?: unknown;
  /** Contents of chat_template.jinja, when present (transformers 5 saves the template there). */
  readonly chatTemplateFile?: string;
  /** Where config.json came from, for error messages. */
  readonly source?: string;
}

type Json = Record<string, unknown>;

/** Defaults of each family's config class in the transformers 4.5x era (published checkpoints rely on them). */
const DEFAULTS: Record<Family, Json> = {
  gemma3: {
    vocab_size: 262_208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26,
    num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh',
    max_position_embeddings: 131_072, rms_norm_eps: 1e-6, tie_word_embeddings: true, rope_theta: 1_000_000,
    rope_local_base_freq: 10_000, rope_scaling: null, query_pre_attn_scalar: 256, sliding_window: 4096,
    sliding_window_pattern: 6, final_logit_softcapping: null, attn_logit_softcapping: null, attention_bias: false,
    bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
  },
  qwen2: {
    vocab_size: 151_936, hidden_size: 4096, intermediate_size: 22_016, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 32, hidden_act: 'silu', max_position_embeddings: 32_768,
    rms_norm_eps: 1e-6, tie_word_embeddings: false, rope_theta: 10_000, rope_scaling: null,
    use_sliding_window: false, sliding_window: 4096, max_window_layers: 28,
  },
  llama: {
    vocab_size: 32_000, hidden_size: 4096, intermediate_size: 11_008, num_hidden_layers: 32,
    num_attention_heads: 32, hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, rope_theta: 10_000, rope_scaling: null, attention_bias: false, mlp_bias: false,
    bos_token_id: 1, eos_token_id: 2,
  },
};

/** Hugging Face classes and model types unicorn knows, and the family each belongs to. */
const ARCHITECTURES: Record<string, { family: Family; multimodal: boolean }> = {
  Gemma3ForConditionalGeneration: { family: 'gemma3', multimodal: true },
  Gemma3ForCausalLM: { family: 'gemma3', multimodal: false },
  Qwen2ForCausalLM: { family: 'qwen2', multimodal: false },
  LlamaForCausalLM: { family: 'llama', multimodal: false },
};
const MODEL_TYPES: Record<string, { family: Family; multimodal: boolean }> = {
  gemma3: { family: 'gemma3', multimodal: true },
  gemma3_text: { family: 'gemma3', multimodal: false },
  qwen2: { family: 'qwen2', multimodal: false },
  llama: { family: 'llama', multimodal: false },
};

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Typed, validated reads from a config object; errors name the file and the key. */
class Reader {
  constructor(readonly cfg: Json, readonly defaults: Json, readonly source: string) {}

  raw(key: string): unknown {
    const v = this.cfg[key];
    return v === undefined ? this.defaults[key] : v;
  }

  private fail(key: string, want: string): never {
    throw new ConfigError(`${this.source}: '${key}' should be ${want}, found ${JSON.stringify(this.raw(key)) ?? 'nothing'}`);
  }

  int(key: string, min = 1): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  num(key: string): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(key, 'a positive number');
    return v;
  }

  optNum(key: string): number | null {
    const v = this.raw(key);
    if (v === null || v === undefined) return null;
    return this.num(key);
  }

  bool(key: string): boolean {
    const v = this.raw(key);
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  str(key: string): string {
    const v = this.raw(key);
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }
}

function ids(v: unknown): number[] {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0);
  return [];
}

function parseRope(source: string, obj: unknown, fallbackTheta: number, what: string): Rope {
  if (obj === null || obj === undefined) return { theta: fallbackTheta, scaling: { kind: 'none' } };
  if (!isObject(obj)) throw new ConfigError(`${source}: ${what} should be an object, found ${JSON.stringify(obj)}`);
  const r = new Reader(obj, {}, `${source} (${what})`);
  const type = obj['rope_type'] ?? obj['type'] ?? 'default';
  const theta = obj['rope_theta'] === undefined ? fallbackTheta : r.num('rope_theta');
  switch (type) {
    case 'default':
      return { theta, scaling: { kind: 'none' } };
    case 'linear':
      return { theta, scaling: { kind: 'linear', factor: r.num('factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          kind: 'llama3',
          factor: r.num('factor'),
          lowFreqFactor: r.num('low_freq_factor'),
          highFreqFactor: r.num('high_freq_factor'),
          originalMaxPositions: r.int('original_max_position_embeddings'),
        },
      };
    default:
      throw new ConfigError(`${source}: ${what} uses rope type ${JSON.stringify(type)}, which unicorn does not support yet (supported: default, linear, llama3)`);
  }
}

/** Which layers use sliding-window attention. */
function layerKinds(r: Reader, family: Family, numLayers: number): AttentionKind[] {
  const types = r.cfg['layer_types'];
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== numLayers) {
      throw new ConfigError(`${r.source}: 'layer_types' should list ${numLayers} layers, found ${Array.isArray(types) ? types.length : JSON.stringify(types)}`);
    }
    return types.map((t, i) => {
      if (t === 'sliding_attention') return 'sliding';
      if (t === 'full_attention') return 'full';
      throw new ConfigError(`${r.source}: layer_types[${i}] is ${JSON.stringify(t)}; expected "sliding_attention" or "full_attention"`);
    });
  }
  const kinds: AttentionKind[] = [];
  for (let i = 0; i < numLayers; i++) {
    if (family === 'gemma3') kinds.push((i + 1) % r.int('sliding_window_pattern') === 0 ? 'full' : 'sliding');
    else if (family === 'qwen2') kinds.push(r.bool('use_sliding_window') && i >= r.int('max_window_layers', 0) ? 'sliding' : 'full');
    else kinds.push('full');
  }
  return kinds;
}

/** Rope per attention kind, from rope_parameters (transformers 5) or rope_theta/rope_scaling (4.x). */
function ropes(r: Reader, family: Family): Record<AttentionKind, Rope> {
  const params = r.cfg['rope_parameters'];
  const theta = r.num('rope_theta');
  if (isObject(params)) {
    if (isObject(params['full_attention']) || isObject(params['sliding_attention'])) {
      const full = parseRope(r.source, params['full_attention'], theta, 'rope_parameters.full_attention');
      const sliding = params['sliding_attention'] === undefined ? full : parseRope(r.source, params['sliding_attention'], theta, 'rope_parameters.sliding_attention');
      return { full, sliding };
    }
    const one = parseRope(r.source, params, theta, 'rope_parameters');
    return { full: one, sliding: one };
  }
  const full = parseRope(r.source, r.raw('rope_scaling'), theta, 'rope_scaling');
  // Gemma 3's local layers use their own base frequency and are never scaled.
  const sliding = family === 'gemma3' ? { theta: r.num('rope_local_base_freq'), scaling: { kind: 'none' } as const } : full;
  return { full, sliding };
}

function chatTemplateOf(files: ConfigFiles): string | null {
  if (typeof files.chatTemplateFile === 'string' && files.chatTemplateFile.length > 0) return files.chatTemplateFile;
  const tc = files.tokenizerConfig;
  if (!isObject(tc)) return null;
  const t = tc['chat_template'];
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => isObject(x) && x['name'] === 'default') ?? t[0];
    if (isObject(named) && typeof named['template'] === 'string') return named['template'];
  }
  return null;
}

export const SUPPORTED_ARCHITECTURES = Object.keys(ARCHITECTURES);

/**
 * The family a config.json belongs to, from its `architectures` (else its `model_type`) alone; an
 * architecture unicorn does not run is refused with the list of those it does.
 */
export function architectureOf(top: unknown, source = 'config.json'): { family: Family; multimodal: boolean; archName: string | undefined; modelType: string | undefined } {
  if (!isObject(top)) throw new ConfigError(`${source}: is not a JSON object`);
  const archs = Array.isArray(top['architectures']) ? (top['architectures'] as unknown[]) : [];
  const archName = archs.find((a): a is string => typeof a === 'string' && Object.hasOwn(ARCHITECTURES, a));
  const modelType = typeof top['model_type'] === 'string' ? top['model_type'] : undefined;
  const known = archName !== undefined ? ARCHITECTURES[archName] : modelType !== undefined && Object.hasOwn(MODEL_TYPES, modelType) ? MODEL_TYPES[modelType] : undefined;
  if (known === undefined) {
    const said = [archs.length > 0 ? `architectures ${JSON.stringify(archs)}` : '', modelType !== undefined ? `model_type "${modelType}"` : ''].filter(Boolean).join(', ');
    throw new ConfigError(`${source}: unknown architecture (${said || 'no architectures or model_type given'}); unicorn runs ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  return { ...known, archName, modelType };
}

/** Derives the ModelSpec from parsed config files. Pure. */
export function parseModelSpec(files: ConfigFiles): ModelSpec {
  const source = files.source ?? 'config.json';
  const top = files.config;
  const { family, multimodal, archName, modelType } = architectureOf(top, source);
  if (!isObject(top)) throw new ConfigError(`${source}: is not a JSON object`);
  let cfg: Json = top;
  if (multimodal) {
    const tc = top['text_config'];
    if (tc !== undefined && !isObject(tc)) throw new ConfigError(`${source}: 'text_config' should be an object`);
    cfg = tc ?? {};
  }
  const r = new Reader(cfg, DEFAULTS[family], multimodal ? `${source} (text_config)` : source);

  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = cfg['num_key_value_heads'] === undefined && family !== 'gemma3' ? numHeads : r.int('num_key_value_heads');
  if (numHeads % numKvHeads !== 0) throw new ConfigError(`${r.source}: num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = cfg['head_dim'] === undefined && family !== 'gemma3' ? hiddenSize / numHeads : r.int('head_dim');
  if (!Number.isInteger(headDim)) throw new ConfigError(`${r.source}: hidden_size ${hiddenSize} is not divisible by ${numHeads} heads and no head_dim is given`);
  const numLayers = r.int('num_hidden_layers');

  const act = family === 'gemma3' ? r.str('hidden_activation') : r.str('hidden_act');
  const activation: Activation | undefined = act === 'gelu_pytorch_tanh' ? 'gelu_tanh' : act === 'silu' ? 'silu' : undefined;
  if (activation === undefined) throw new ConfigError(`${r.source}: activation "${act}" is not supported (supported: gelu_pytorch_tanh, silu)`);
  if (family === 'llama' && (r.bool('attention_bias') || r.bool('mlp_bias'))) {
    throw new ConfigError(`${r.source}: Llama with attention_bias or mlp_bias is not supported yet`);
  }

  const kinds = layerKinds(r, family, numLayers);
  const hasSliding = kinds.includes('sliding');
  const slidingWindow = hasSliding ? r.int('sliding_window') : null;
  const rope = ropes(r, family);
  const layers = kinds.map((attention, index) => ({ index, attention, window: attention === 'sliding' ? slidingWindow : null, rope: rope[attention] }));

  // Token ids: the text config, the wrapper, then generation_config.json (which wins for eos).
  const gen = isObject(files.generationConfig) ? files.generationConfig : {};
  const firstId = (...vs: unknown[]): number | null => {
    for (const v of vs) {
      const found = ids(v);
      if (found.length > 0) return found[0]!;
    }
    return null;
  };
  const eos = [...new Set([...ids(gen['eos_token_id']), ...ids(top['eos_token_id']), ...ids(cfg['eos_token_id'])])];
  const tie = top['tie_word_embeddings'] !== undefined && multimodal ? Boolean(top['tie_word_embeddings']) : r.bool('tie_word_embeddings');

  return {
    family,
    architecture: archName ?? (multimodal ? 'Gemma3ForConditionalGeneration' : `${family} (model_type ${modelType})`),
    multimodal,
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: r.int('vocab_size'),
    rmsNormEps: r.num('rms_norm_eps'),
    normWeightOffset: family === 'gemma3' ? 1 : 0,
    activation,
    queryPreAttnScalar: family === 'gemma3' ? r.num('query_pre_attn_scalar') : headDim,
    attnLogitSoftcap: family === 'gemma3' ? r.optNum('attn_logit_softcapping') : null,
    finalLogitSoftcap: family === 'gemma3' ? r.optNum('final_logit_softcapping') : null,
    tieWordEmbeddings: tie,
    qkvBias: family === 'qwen2',
    qkNorm: family === 'gemma3',
    sandwichNorms: family === 'gemma3',
    embeddingScale: family === 'gemma3' ? Math.sqrt(hiddenSize) : 1,
    slidingWindow,
    layers,
    maxPositionEmbeddings: r.int('max_position_embeddings'),
    bosTokenId: firstId(cfg['bos_token_id'], top['bos_token_id'], gen['bos_token_id'], DEFAULTS[family]['bos_token_id']),
    eosTokenIds: eos.length > 0 ? eos : ids(DEFAULTS[family]['eos_token_id']),
    padTokenId: firstId(cfg['pad_token_id'], top['pad_token_id'], gen['pad_token_id'], DEFAULTS[family]['pad_token_id']),
    chatTemplate: chatTemplateOf(files),
  };
}
