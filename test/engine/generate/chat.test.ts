/** The Chat engine's slash commands against a scripted replier (no model): failures are messages, the conversation stays. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Chat, type Replier, type TurnStats } from '../../../src/engine/generate/chat.js';
import { GREEDY } from '../../../src/engine/generate/sampler.js';
import type { ChatMessage } from '../../../src/engine/text/tokenizer.js';
import { scratchDir } from '../../support/paths.js';

class EchoReplier implements Replier {
  readonly model = 'echo';
  async reply(messages: readonly ChatMessage[], o: { onText: (t: string) => void }): Promise<{ reply: string; stats: TurnStats }> {
    const text = `you said ${messages[messages.length - 1]!.content}`;
    o.onText(text);
    return { reply: text, stats: { promptTokens: 1, reusedTokens: 0, generatedTokens: 1, timeToFirstTokenMs: 1, tokensPerSecond: null, finish: 'eos' } };
  }
  reset(): void {}
  context() {
    return { used: 0, limit: 64, gpuBytes: null };
  }
}

test('/save to a missing folder, a directory or /proc is a message; the conversation is still there and saves elsewhere', async () => {
  const chat = await new Chat(new EchoReplier(), GREEDY, 8).init();
  await chat.send('hello', { onText: () => {}, shouldStop: () => false });
  const dir = scratchDir('chat-save');
  for (const target of [path.join(dir, 'missing', 'talk.json'), dir, '/proc/self/talk.json']) {
    const r = chat.command(`/save ${target}`);
    assert.match(r.output, /^not saved: cannot write .*; the conversation is still here$/, target);
    assert.notEqual(r.exit, true);
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'no temporary file left behind');
  const ok = chat.command(`/save ${path.join(dir, 'talk.json')}`);
  assert.match(ok.output, /saved 2 messages/);
  assert.deepEqual(
    JSON.parse(fs.readFileSync(path.join(dir, 'talk.json'), 'utf8')).messages.map((m: ChatMessage) => m.content),
    ['hello', 'you said hello'],
  );
});
