/**
 * The fewest tokens a prompt can encode to, found in linear time (often constant) without tokenizing
 * it, so that the server refuses a prompt far longer than the context before it spends seconds (and
 * hundreds of MB) tokenizing it while every other client waits: the tokenizer runs on the event loop,
 * and a 7 MB prompt held the server 5-14 s before the 400.
 *
 * The bound: every token of the vocabulary covers at most `longest` UTF-16 code units of the text it
 * was cut from (a byte-level piece has one character per byte, and a byte is at most one code unit;
 * a SentencePiece piece has one character per character, '▁' standing for a space; byte-fallback
 * pieces cover a byte; an added token covers its own content). So a text the tokenizer cuts into
 * tokens has at least floor(length / longest) of them, and the server refuses a prompt only when
 * that already exceeds the context: the bound never refuses a prompt that would fit.
 *
 * "The text the tokenizer cuts" is the prompt after the tokenizer's normalizer, which the bound runs
 * itself (the tokenizer library's own implementation, so NFC composition, accent stripping and
 * replacements count exactly; normalizers that never shorten text, such as a space made '▁' or
 * lower-casing, are skipped). It runs it on the whole prompt where the tokenizer runs it on the pieces
 * between added tokens; that can only differ at those tokens' edges. Where whitespace may vanish
 * before tokens are cut (added tokens that strip their neighbours, tokenizer_config.json's
 * `remove_space`, a Strip normalizer, pre-tokenizers that split on whitespace and drop it), only the
 * code units that are not whitespace are counted (a non-whitespace character never loses its
 * neighbours that way, so normalizing the prompt whole sees the same adjacencies).
 *
 * Some tokenizers give no such bound, and get none (the prompt is then tokenized as before): one whose
 * model can turn a run of any length into one token (WordPiece, WordLevel, Unigram, BPE fusing
 * unknown characters without byte fallback), or drops characters it does not know (BPE with neither
 * an unknown token nor byte fallback, unless byte-level), or whose pre-tokenizer drops text (a Split
 * that removes what matches or keeps only that, a Replace that shortens), or a normalizer it does not
 * know.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import * as tokenizers from '@huggingface/tokenizers';
import type { ChatMessage } from '../text/tokenizer.js';

type Json = Record<string, unknown>;

/**
 * The tokenizer library's own normalizers, built from tokenizer.json's config (so the bound sees the
 * text exactly as the tokenizer does). The library exports them but its type declarations do not.
 */
const SequenceNormalizer = (tokenizers as unknown as { SequenceNormalizer?: new (config: unknown) => { normalize(text: string): string } }).SequenceNormalizer;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A lower bound on the token count of any text, for one tokenizer. */
export class PromptBound {
  private constructor(
    /** The most code units of text that one token covers. */
    readonly longest: number,
    /** Whether whitespace reaches the model as it is (then it counts; else only the rest does). */
    readonly keepsWhitespace: boolean,
    /** The normalizer, where it can shorten text (null: the text's length is its normalized length or less). */
    private readonly normalize: ((text: string) => string) | null,
  ) {}

  /**
   * The bound of the tokenizer in `tokenizer.json` (and its tokenizer_config.json, whose
   * `remove_space` and `do_lowercase_and_remove_accent` remove characters), or null when it gives none.
   */
  static fromJson(tokenizer: unknown, config: unknown = {}): PromptBound | null {
    if (!isObject(tokenizer) || !isObject(tokenizer['model'])) return null;
    const cfg = isObject(config) ? config : {};
    const model = tokenizer['model'];
    const pre = tokenizer['pre_tokenizer'];
    if (!modelKeepsText(model, hasType(pre, 'ByteLevel')) || !preTokenizerKeepsText(pre)) return null;
    const norm = tokenizer['normalizer'];
    if (norm !== null && norm !== undefined && !knownNormalizer(norm)) return null;
    let longest = 0;
    const vocab = model['vocab'];
    if (Array.isArray(vocab)) for (const e of vocab) longest = Math.max(longest, Array.isArray(e) && typeof e[0] === 'string' ? e[0].length : 0);
    else if (isObject(vocab)) for (const piece of Object.keys(vocab)) longest = Math.max(longest, piece.length);
    else return null;
    const added = Array.isArray(tokenizer['added_tokens']) ? tokenizer['added_tokens'].filter(isObject) : [];
    for (const t of added) if (typeof t['content'] === 'string') longest = Math.max(longest, t['content'].length);
    if (longest === 0) return null;

    const keepsWhitespace = cfg['remove_space'] !== true && !added.some((t) => t['lstrip'] === true || t['rstrip'] === true)
      && !hasType(norm, 'Strip') && !['Whitespace', 'WhitespaceSplit', 'BertPreTokenizer'].some((t) => hasType(pre, t));
    let normalizer: ((t: string) => string) | null = null;
    if (isObject(norm) && shortens(norm)) {
      if (SequenceNormalizer === undefined) return null;
      try {
        const n = new SequenceNormalizer({ type: 'Sequence', normalizers: [norm] });
        normalizer = (t) => n.normalize(t);
      } catch {
        return null;
      }
    }
    if (cfg['do_lowercase_and_remove_accent'] === true) {
      const then = normalizer;
      normalizer = (t) => {
        const u = t.toLowerCase().normalize('NFD').replace(/\p{M}/gu, '');
        return then === null ? u : then(u);
      };
    }
    return new PromptBound(longest, keepsWhitespace, normalizer);
  }

  /** The bound of the tokenizer in a model directory, or null (no tokenizer.json, or no bound). */
  static load(dir: string): PromptBound | null {
    const tokenizer = readJson(path.join(dir, 'tokenizer.json'));
    return tokenizer === undefined ? null : PromptBound.fromJson(tokenizer, readJson(path.join(dir, 'tokenizer_config.json')) ?? {});
  }

  /** The code units of `text` that count: normalized, whitespace left out unless it is kept. */
  counted(text: string): number {
    const t = this.normalize === null ? text : this.normalize(text);
    return this.keepsWhitespace ? t.length : solidLength(t);
  }

  /** No encoding of `text` by this tokenizer has fewer tokens than this. */
  fewestTokens(text: string): number {
    return Math.floor(this.counted(text) / this.longest);
  }
}

/** Code units that are not whitespace (JavaScript's \s: what trim() and the tokenizer library's splits remove). */
function solidLength(t: string): number {
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    const ws = c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a)
      || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
    if (!ws) n++;
  }
  return n;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Whether a normalizer or pre-tokenizer config is (or holds, in a Sequence) one of `type`. */
function hasType(c: unknown, type: string): boolean {
  if (!isObject(c)) return false;
  if (c['type'] === type) return true;
  const inner = c['normalizers'] ?? c['pretokenizers'];
  return c['type'] === 'Sequence' && Array.isArray(inner) && inner.some((x) => hasType(x, type));
}

/** Whether every character of the text ends up in a token of at most `longest` characters. */
function modelKeepsText(model: Json, byteLevel: boolean): boolean {
  const type = model['type'] ?? (isObject(model['vocab']) && Array.isArray(model['merges']) ? 'BPE' : undefined);
  if (type !== 'BPE') return false;
  // Byte-level: every byte is a piece of the vocabulary, nothing is unknown.
  if (byteLevel) return true;
  const vocab = model['vocab'];
  const bytes = isObject(vocab) && Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).every((p) => p in vocab);
  if (model['byte_fallback'] === true && bytes) return true;
  // An unknown character is one unknown token each, unless they are fused (a run of any length in one).
  return typeof model['unk_token'] === 'string' && model['fuse_unk'] !== true;
}

/** Whether the pre-tokenizer keeps every character (whitespace aside: see keepsWhitespace). */
function preTokenizerKeepsText(pre: unknown): boolean {
  if (pre === null || pre === undefined) return true;
  if (!isObject(pre)) return false;
  switch (pre['type']) {
    case 'ByteLevel': case 'Metaspace': case 'Digits': case 'UnicodeScripts': case 'FixedLength':
    case 'Whitespace': case 'WhitespaceSplit': case 'BertPreTokenizer':
      return true;
    case 'Punctuation':
      return String(pre['behavior'] ?? '').toLowerCase() !== 'removed';
    case 'Split':
      // The library drops what does not match when `invert` is true or missing.
      return pre['invert'] === false && String(pre['behavior'] ?? '').toLowerCase() !== 'removed' && isObject(pre['pattern'])
        && (typeof pre['pattern']['String'] === 'string' || typeof pre['pattern']['Regex'] === 'string');
    case 'Replace': {
      const p = pre['pattern'];
      return isObject(p) && typeof p['String'] === 'string' && typeof pre['content'] === 'string' && pre['content'].length >= p['String'].length;
    }
    case 'Sequence':
      return Array.isArray(pre['pretokenizers']) && pre['pretokenizers'].every(preTokenizerKeepsText);
    default:
      return false;
  }
}

const NORMALIZERS = new Set(['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'Prepend', 'Strip', 'StripAccents', 'BertNormalizer', 'Precompiled', 'Replace']);

function knownNormalizer(n: unknown): boolean {
  if (!isObject(n)) return false;
  if (n['type'] === 'Sequence') return Array.isArray(n['normalizers']) && n['normalizers'].every(knownNormalizer);
  return typeof n['type'] === 'string' && NORMALIZERS.has(n['type']);
}

/**
 * Whether a normalizer can make text shorter (then the bound runs it). Lower-casing never shortens
 * (checked for every code point in the tests), Prepend adds, a Replace of a string by one as long or
 * longer does not; Strip only removes whitespace, which is then not counted anyway.
 */
function shortens(n: unknown): boolean {
  if (!isObject(n)) return true;
  switch (n['type']) {
    case 'Sequence': return Array.isArray(n['normalizers']) && n['normalizers'].some(shortens);
    case 'Lowercase': case 'Prepend': case 'Strip': return false;
    case 'Replace': {
      const p = n['pattern'];
      return !(isObject(p) && typeof p['String'] === 'string' && typeof n['content'] === 'string' && n['content'].length >= p['String'].length);
    }
    default: return true;
  }
}

/** The string of a special token entry in tokenizer_config.json ("<bos>" or { content: "<bos>" }). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

/**
 * The chat template of a model directory as a function, for a bound on a conversation without the
 * model's tokenizer in this process (a `serve` on a resident server): found and rendered as
 * TextCodec does (chat_template.jinja, else tokenizer_config.json's chat_template), null without one.
 */
export function chatRenderer(dir: string): ((messages: readonly ChatMessage[]) => string) | null {
  const config = readJson(path.join(dir, 'tokenizer_config.json'));
  const cfg = isObject(config) ? config : {};
  let source: string | null = null;
  try {
    source = fs.readFileSync(path.join(dir, 'chat_template.jinja'), 'utf8');
  } catch {
    const t = cfg['chat_template'];
    if (typeof t === 'string') source = t;
    else if (Array.isArray(t)) {
      const named = t.find((x) => isObject(x) && x['name'] === 'default') as { template?: unknown } | undefined;
      source = typeof named?.template === 'string' ? named.template : null;
    }
  }
  if (source === null) return null;
  let template: Template;
  try {
    template = new Template(source);
  } catch {
    return null;
  }
  const specials = Object.fromEntries(['bos_token', 'eos_token', 'pad_token', 'unk_token'].map((k) => [k, tokenText(cfg[k]) ?? '']));
  return (messages) => template.render({ ...specials, messages: messages.map((m) => ({ role: m.role, content: m.content })), add_generation_prompt: true });
}
