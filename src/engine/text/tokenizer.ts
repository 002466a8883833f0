/**
 * Text in and out of token ids: tokenizer.json through @huggingface/tokenizers, chat templates
 * (tokenizer_config.json's chat_template or chat_template.jinja) through @huggingface/jinja, and a
 * streaming detokenizer that never emits a broken UTF-8 sequence.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError, UnicornError } from '../errors.js';
import { FileError, readRegularFile } from '../formats/files.js';

export class ChatTemplateError extends UnicornError {}

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/** tokenizer.json can be tens of MB (Gemma 3's is 33 MB); nothing legitimate comes near this. */
const MAX_TOKENIZER_BYTES = 1 << 30;

function readText(file: string, maxBytes?: number): string {
  try {
    return readRegularFile(file, maxBytes);
  } catch (e) {
    throw e instanceof FileError ? new ConfigError(e.message) : e;
  }
}

function readJson(file: string): Record<string, unknown> {
  const text = readText(file, MAX_TOKENIZER_BYTES);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${file}: is not a JSON object`);
  return v as Record<string, unknown>;
}

/** The string of a special token entry in tokenizer_config.json ("<bos>" or { content: "<bos>" }). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** Every identifier a template refers to (variables read, set or looped over). */
function templateIdentifiers(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const n of node) templateIdentifiers(n, out);
  else if (node !== null && typeof node === 'object') {
    const n = node as { type?: unknown; value?: unknown };
    if (n.type === 'Identifier' && typeof n.value === 'string') out.add(n.value);
    for (const v of Object.values(node)) if (v !== null && typeof v === 'object') templateIdentifiers(v, out);
  }
  return out;
}

/**
 * What the tokenizer's pipeline may delete from a text before its model sees it. Whatever it
 * deletes cannot count towards a lower bound on the number of tokens.
 */
interface Drops {
  /** Whitespace (Strip, WhitespaceSplit, added tokens' lstrip / rstrip, remove_space...). */
  whitespace: boolean;
  /** Combining marks and conjoining jamo (absorbed by NFC / NFKC composition, or stripped as accents). */
  marks: boolean;
}

/**
 * How short a text can get on its way to the model, from tokenizer.json and tokenizer_config.json:
 * what the pipeline may delete, or null where no sound bound exists (a part that can swallow any
 * amount of text: a regular-expression replace, a split that removes what it matches, fused unknown
 * tokens, WordPiece's one [UNK] for a whole long word, or any part this does not know). Only parts
 * whose worst case is known are accepted.
 */
function pipelineDrops(json: Record<string, unknown>, config: Record<string, unknown>): Drops | null {
  const drops: Drops = { whitespace: config['remove_space'] === true, marks: config['do_lowercase_and_remove_accent'] === true };
  const obj = (v: unknown): Record<string, unknown> | null =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  const stringPattern = (p: unknown): string | null => {
    const o = obj(p);
    return o !== null && typeof o['String'] === 'string' ? o['String'] : null;
  };
  const normalizer = (n: unknown): boolean => {
    if (n === null || n === undefined) return true;
    const o = obj(n);
    if (o === null) return false;
    switch (o['type']) {
      case 'Sequence':
        return Array.isArray(o['normalizers']) && o['normalizers'].every(normalizer);
      case 'NFC':
      case 'NFD':
      case 'NFKC':
      case 'NFKD':
        drops.marks = true;
        return true;
      case 'Lowercase':
      case 'Prepend':
        return true;
      case 'Strip':
        drops.whitespace = true;
        return true;
      case 'StripAccents':
        drops.marks = true;
        return true;
      case 'Replace': {
        // Only a fixed string replaced by at least as many characters, none of them droppable (Gemma's ' ' -> '▁').
        const from = stringPattern(o['pattern']);
        const to = o['content'];
        return from !== null && from.length > 0 && typeof to === 'string' && [...to].length >= [...from].length && !/[\s\p{M}]/u.test(to);
      }
      default:
        return false;
    }
  };
  const preTokenizer = (p: unknown): boolean => {
    if (p === null || p === undefined) return true;
    const o = obj(p);
    if (o === null) return false;
    switch (o['type']) {
      case 'Sequence':
        return Array.isArray(o['pretokenizers']) && o['pretokenizers'].every(preTokenizer);
      case 'ByteLevel':
      case 'Metaspace':
      case 'Digits':
      case 'Punctuation':
        return true;
      case 'Whitespace':
      case 'WhitespaceSplit':
        drops.whitespace = true;
        return true;
      case 'Split': {
        if (o['behavior'] !== 'Removed') return true;
        const pat = stringPattern(o['pattern']);
        if (pat === null || /\S/.test(pat)) return false;
        drops.whitespace = true;
        return true;
      }
      default:
        return false;
    }
  };
  const model = obj(json['model']);
  if (model === null) return null;
  // Unknown characters become one token each unless fused (then a run of any length is one token).
  if (model['type'] === 'BPE') {
    if (model['fuse_unk'] === true && model['byte_fallback'] !== true) return null;
  } else if (model['type'] === 'Unigram') {
    if (model['byte_fallback'] !== true) return null;
  } else return null;
  if (!normalizer(json['normalizer']) || !preTokenizer(json['pre_tokenizer'])) return null;
  if (Array.isArray(json['added_tokens']) && json['added_tokens'].some((t) => obj(t)?.['lstrip'] === true || obj(t)?.['rstrip'] === true))
    drops.whitespace = true;
  return drops;
}

/** Code points of a string (a surrogate pair is one). */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

export class TextCodec {
  readonly chatTemplate: string | null;
  private readonly template: Template | null;
  private readonly variables: ReadonlySet<string>;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** What the pipeline may delete (null: no sound bound for this tokenizer). */
  private readonly drops: Drops | null;
  /** The longest token string, in code points (computed on first use). */
  private longestToken = 0;

  private constructor(
    readonly dir: string,
    private readonly tokenizer: Tokenizer,
    private readonly config: Record<string, unknown>,
    chatTemplate: string | null,
    json: Record<string, unknown> = {},
  ) {
    this.drops = pipelineDrops(json, config);
    this.chatTemplate = chatTemplate;
    this.bosToken = tokenText(config['bos_token']);
    this.eosToken = tokenText(config['eos_token']);
    if (chatTemplate !== null) {
      try {
        this.template = new Template(chatTemplate);
      } catch (e) {
        throw new ChatTemplateError(`${dir}: the chat template does not parse (${e instanceof Error ? e.message : String(e)})`);
      }
      this.variables = templateIdentifiers(this.template.parsed);
    } else {
      this.template = null;
      this.variables = new Set();
    }
  }

  /** Loads tokenizer.json (required) and tokenizer_config.json / chat_template.jinja (optional). */
  static load(dir: string): TextCodec {
    const tj = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(tj)) {
      throw new ConfigError(`${dir}: no tokenizer.json, so text cannot be turned into tokens`, {
        hint: "copy tokenizer.json (and tokenizer_config.json) from the model's original download into this directory",
      });
    }
    const tcPath = path.join(dir, 'tokenizer_config.json');
    const config = fs.existsSync(tcPath) ? readJson(tcPath) : {};
    const jinja = path.join(dir, 'chat_template.jinja');
    let template: string | null = null;
    if (fs.existsSync(jinja)) template = readText(jinja);
    else if (typeof config['chat_template'] === 'string') template = config['chat_template'];
    else if (Array.isArray(config['chat_template'])) {
      const named = (config['chat_template'] as { name?: string; template?: string }[]).find((t) => t.name === 'default');
      template = named?.template ?? null;
    }
    const json = readJson(tj);
    // The model's unknown token (tokenizer.json's model.unk_token), as transformers takes it: the
    // library reads a WordLevel model's from tokenizer_config.json only, and without one it mapped
    // every word outside the vocabulary to no id at all.
    const model = json['model'] as Record<string, unknown> | undefined;
    const unk = typeof model?.['unk_token'] === 'string' ? model['unk_token'] : undefined;
    const withUnk = unk !== undefined && config['unk_token'] === undefined ? { ...config, unk_token: unk } : config;
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, withUnk);
    } catch (e) {
      if (e instanceof UnicornError) throw e;
      throw new ConfigError(`${tj}: cannot be used as a tokenizer (${e instanceof Error ? e.message : String(e)})`);
    }
    return new TextCodec(dir, tokenizer, config, template, json);
  }

  /**
   * A lower bound on the number of tokens `text` encodes to, found without encoding it (encoding
   * megabytes takes minutes and gigabytes). Each token stands for at most L code points of the text
   * as the model sees it, L being the longest token string in the vocabulary (in a byte-level
   * vocabulary one code point per byte, and every character is at least one byte); so N characters
   * that the tokenizer keeps are at least ceil(N / L) tokens. The characters counted are those its
   * pipeline cannot delete (see pipelineDrops); 0 where the tokenizer allows no such bound.
   * With `enough`, the answer is only as exact as telling whether the bound passes it needs: counting
   * stops once it does, and a text too short to pass it may get 0.
   */
  minTokens(text: string, enough = Infinity): number {
    if (this.drops === null || text.length === 0) return 0;
    if (this.longestToken === 0) {
      let longest = 1;
      for (const t of this.tokenizer.get_vocab(true).keys()) longest = Math.max(longest, codePoints(t));
      this.longestToken = longest;
    }
    const L = this.longestToken;
    if (!this.drops.whitespace && !this.drops.marks) return Math.ceil(codePoints(text) / L);
    // At most text.length characters count: no need to look when even all of them would be under.
    if (enough !== Infinity && Math.ceil(text.length / L) <= enough) return 0;
    const limit = enough === Infinity ? Infinity : enough * L + 1;
    const droppable = this.drops.whitespace ? (this.drops.marks ? /[\s\p{M}\u1160-\u11ff\ud7b0-\ud7ff]/u : /\s/u) : /[\p{M}\u1160-\u11ff\ud7b0-\ud7ff]/u;
    let kept = 0;
    for (let i = 0; i < text.length && kept < limit; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0xdc00 && c <= 0xdfff) continue; // the second half of a pair: counted with the first
      if (c < 0x80) {
        if (!this.drops.whitespace || !(c === 0x20 || (c >= 0x09 && c <= 0x0d))) kept++;
        continue;
      }
      const ch = c >= 0xd800 && c <= 0xdbff ? text.slice(i, i + 2) : text[i]!;
      if (!droppable.test(ch)) kept++;
    }
    return Math.ceil(kept / L);
  }

  /** Token ids of `text`; `special` adds what the tokenizer adds around a sequence (e.g. <bos>). */
  encode(text: string, special = true): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: special }).ids;
    const bad = ids.findIndex((id: number | undefined) => !Number.isInteger(id));
    if (bad >= 0) {
      const piece = this.tokenizer.encode(text, { add_special_tokens: special }).tokens[bad];
      throw new ConfigError(
        `${this.dir}/tokenizer.json: ${JSON.stringify(piece ?? '?')} is not in the vocabulary and the tokenizer names no unknown token for it`,
        {
          hint: "the tokenizer files are incomplete or not this model's: copy tokenizer.json and tokenizer_config.json from its original download",
        },
      );
    }
    return ids;
  }

  decode(ids: readonly number[], skipSpecial = true): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /**
   * Renders a conversation with the model's chat template, ending with the assistant's turn opened
   * when addGenerationPrompt. `extra` are template variables (e.g. enable_thinking); one the
   * template never mentions is an error rather than silently ignored.
   */
  renderChat(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    if (this.template === null) {
      throw new ChatTemplateError(`${this.dir}: the model has no chat template (neither chat_template in tokenizer_config.json nor chat_template.jinja)`, {
        hint: 'it is probably a base model: prompt it with plain text (leave out --chat)',
      });
    }
    const extra = opts.extra ?? {};
    const unknown = Object.keys(extra).filter((k) => !this.variables.has(k));
    if (unknown.length > 0) {
      const offered = [...this.variables].filter((v) => !['messages', 'message', 'loop', 'raise_exception', 'namespace', 'range'].includes(v)).sort();
      throw new ChatTemplateError(`the chat template has no variable ${unknown.map((u) => `"${u}"`).join(', ')}`, {
        hint: `variables this template reads: ${offered.join(', ')}`,
      });
    }
    const context: Record<string, unknown> = {
      ...Object.fromEntries(['bos_token', 'eos_token', 'pad_token', 'unk_token'].map((k) => [k, tokenText(this.config[k]) ?? ''])),
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      ...extra,
    };
    try {
      return this.template.render(context);
    } catch (e) {
      if (e instanceof UnicornError) throw e;
      // Includes the template's own raise_exception(...) (e.g. "Conversation roles must alternate").
      throw new ChatTemplateError(`the chat template did not render this conversation: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/**
 * Incremental detokenization: text is emitted as tokens arrive, but never a partial UTF-8 sequence
 * (a token holding half of an emoji waits for the rest). Decodes a sliding window of recent tokens
 * and emits the difference, so a decoder that treats the first token of a span specially (leading
 * spaces) sees the same span twice.
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly codec: Pick<TextCodec, 'decode'>) {}

  /** Adds a token; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.codec.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.codec.decode(this.ids.slice(this.prefixOffset));
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  /** What is still held back at the end (replacement characters for a truncated sequence). */
  flush(): string {
    const prefix = this.codec.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.codec.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return full.length > prefix.length ? full.slice(prefix.length) : '';
  }
}
