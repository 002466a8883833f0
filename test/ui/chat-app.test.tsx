/** The chat UI's components and keys, against a scripted chat engine (no GPU). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { render } from 'ink-testing-library';
import type { ChatEngine, ChatStatus, CommandResult, TurnStats } from '../../src/engine/generate/chat.js';
import { ChatApp } from '../../src/ui/chat-app.js';

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

/** Replies with the words of `reply`, one per event-loop turn, so Esc can land in the middle. */
class ScriptedChat implements ChatEngine {
  readonly model = 'scripted';
  sent: string[] = [];
  commands: string[] = [];
  private used = 0;
  constructor(private readonly reply: string[], private readonly delayMs = 5) {}
  async send(text: string, o: { onText: (t: string) => void; shouldStop: () => boolean }): Promise<{ reply: string; stats: TurnStats }> {
    this.sent.push(text);
    let out = '';
    let finish: TurnStats['finish'] = 'eos';
    for (const w of this.reply) {
      if (o.shouldStop()) { finish = 'aborted'; break; }
      await tick(this.delayMs);
      out += w;
      o.onText(w);
    }
    this.used += 10;
    return { reply: out, stats: { promptTokens: 5, reusedTokens: 0, generatedTokens: 3, timeToFirstTokenMs: 12, tokensPerSecond: 42.5, finish } };
  }
  command(line: string): CommandResult {
    this.commands.push(line);
    return line === '/exit' ? { output: '', exit: true } : { output: `did ${line}` };
  }
  status(): ChatStatus {
    return { contextUsed: this.used, contextLimit: 4096, gpuBytes: 2 ** 30, temperature: 0.8, last: this.used === 0 ? null : { promptTokens: 5, reusedTokens: 0, generatedTokens: 3, timeToFirstTokenMs: 12, tokensPerSecond: 42.5, finish: 'eos' } };
  }
}

test('Enter sends; the reply streams, then joins the transcript; the status line shows TTFT, tok/s, context and GPU memory', async () => {
  const chat = new ScriptedChat(['Hello', ' there', '!']);
  const ui = render(<ChatApp chat={chat} />);
  ui.stdin.write('hi');
  await tick();
  assert.match(ui.lastFrame()!, /> hi/);
  ui.stdin.write('\r');
  await tick(200);
  assert.deepEqual(chat.sent, ['hi']);
  const frame = ui.lastFrame()!;
  assert.match(frame, /Hello there!/);
  assert.match(frame, /TTFT 12 ms · 42\.5 tok\/s · context 10 \/ 4096 · GPU 1\.00 GiB · temp 0\.8/);
  ui.unmount();
});

test('a line ending in \\ continues on the next; Up recalls the history; slash commands go to the engine', async () => {
  const chat = new ScriptedChat(['ok']);
  const ui = render(<ChatApp chat={chat} />);
  ui.stdin.write('first line\\');
  await tick();
  ui.stdin.write('\r');
  await tick();
  ui.stdin.write('second');
  await tick();
  ui.stdin.write('\r');
  await tick(100);
  assert.deepEqual(chat.sent, ['first line\nsecond']);
  ui.stdin.write('/help');
  await tick();
  ui.stdin.write('\r');
  await tick();
  assert.deepEqual(chat.commands, ['/help']);
  assert.match(ui.lastFrame()!, /did \/help/);
  ui.stdin.write('\u001b[A'); // Up: the last entry, the command
  await tick();
  assert.match(ui.lastFrame()!, /> \/help/);
  ui.stdin.write('\u001b[A'); // Up again: the message before it
  await tick();
  assert.match(ui.lastFrame()!, /> first line\nsecond/);
  ui.unmount();
});

test('Esc stops a reply and keeps what was said; Ctrl-C once warns, twice exits', async () => {
  const chat = new ScriptedChat(Array.from({ length: 200 }, (_, i) => `w${i} `), 10);
  const ui = render(<ChatApp chat={chat} />);
  ui.stdin.write('go');
  await tick();
  ui.stdin.write('\r');
  await tick(120);
  ui.stdin.write('\u001b'); // Esc
  await tick(150);
  const frame = ui.lastFrame()!;
  assert.match(frame, /w0 w1 [\s\S]*\[stopped\]/);
  assert.doesNotMatch(frame, /w199/);
  ui.stdin.write('\u0003'); // Ctrl-C
  await tick();
  assert.match(ui.lastFrame()!, /press Ctrl-C again to exit/);
  ui.stdin.write('\u0003');
  await tick();
  ui.unmount();
});
