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

export class ChatTemplateError extends UnicornError {}

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`${file}: ${e instanceof SyntaxError ? `is not valid JSON (${e.message})` : 'cannot be read'}`);
  }
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

export class TextCodec {
  readonly chatTemplate: string | null;
  private readonly template: Template | null;
  private readonly variables: ReadonlySet<string>;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;

  private constructor(readonly dir: string, private readonly tokenizer: Tokenizer, private readonly config: Record<string, unknown>, chatTemplate: string | null) {
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
        hint: 'copy tokenizer.json (and tokenizer_config.json) from the model\'s original download into this directory',
      });
    }
    const tcPath = path.join(dir, 'tokenizer_config.json');
    const config = fs.existsSync(tcPath) ? readJson(tcPath) : {};
    const jinja = path.join(dir, 'chat_template.jinja');
    let template: string | null = null;
    if (fs.existsSync(jinja)) template = fs.readFileSync(jinja, 'utf8');
    else if (typeof config['chat_template'] === 'string') template = config['chat_template'];
    else if (Array.isArray(config['chat_template'])) {
      const named = (config['chat_template'] as { name?: string; template?: string }[]).find((t) => t.name === 'default');
      template = named?.template ?? null;
    }
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(readJson(tj), config);
    } catch (e) {
      if (e instanceof UnicornError) throw e;
      throw new ConfigError(`${tj}: cannot be used as a tokenizer (${e instanceof Error ? e.message : String(e)})`);
    }
    return new TextCodec(dir, tokenizer, config, template);
  }

  /** Token ids of `text`; `special` adds what the tokenizer adds around a sequence (e.g. <bos>). */
  encode(text: string, special = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: special }).ids;
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
