/** The chat UI's components and keys, against a scripted chat engine (no GPU). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { render } from 'ink-testing-library';
import type { ChatEngine, ChatStatus, CommandResult, TurnStats } from '../../src/engine/generate/chat.js';
import { ChatApp } from '../../src/ui/chat-app.js';

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `check` holds (polling; a loaded machine renders late, so a fixed sleep is flaky) and
 * fails with the last frame after `ms`.
 */
async function until(check: () => boolean, frame: () => string | undefined, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out; last frame:\n${frame() ?? ''}`);
    await tick(10);
  }
}

/** Replies with the words of `reply`, one per event-loop turn, so Esc can land in the middle. */
class ScriptedChat implements ChatEngine {
  readonly model = 'scripted';
  sent: string[] = [];
  commands: string[] = [];
  private used = 0;
  constructor(
    private readonly reply: string[],
    private readonly delayMs = 5,
  ) {}
  async send(text: string, o: { onText: (t: string) => void; shouldStop: () => boolean }): Promise<{ reply: string; stats: TurnStats }> {
    this.sent.push(text);
    let out = '';
    let finish: TurnStats['finish'] = 'eos';
    for (const w of this.reply) {
      if (o.shouldStop()) {
        finish = 'aborted';
        break;
      }
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
    return {
      contextUsed: this.used,
      contextLimit: 4096,
      gpuBytes: 2 ** 30,
      temperature: 0.8,
      last: this.used === 0 ? null : { promptTokens: 5, reusedTokens: 0, generatedTokens: 3, timeToFirstTokenMs: 12, tokensPerSecond: 42.5, finish: 'eos' },
    };
  }
}

test('Enter sends; the reply streams, then joins the transcript; the status line shows TTFT, tok/s, context and GPU memory', async () => {
  const chat = new ScriptedChat(['Hello', ' there', '!']);
  const ui = render(<ChatApp chat={chat} />);
  const frame = () => ui.lastFrame() ?? '';
  ui.stdin.write('hi');
  await until(() => /> hi/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => /TTFT/.test(frame()), frame);
  assert.deepEqual(chat.sent, ['hi']);
  assert.match(frame(), /Hello there!/);
  assert.match(frame(), /TTFT 12 ms · 42\.5 tok\/s · context 10 \/ 4096 · GPU 1\.00 GiB · temp 0\.8/);
  ui.unmount();
});

test('a line ending in \\ continues on the next; Up recalls the history; slash commands go to the engine', async () => {
  const chat = new ScriptedChat(['ok']);
  const ui = render(<ChatApp chat={chat} />);
  const frame = () => ui.lastFrame() ?? '';
  ui.stdin.write('first line\\');
  await until(() => /first line\\/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => !/first line\\/.test(frame()), frame);
  ui.stdin.write('second');
  await until(() => /second/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => chat.sent.length === 1 && /ok/.test(frame()) && /Ctrl-C twice exits/.test(frame()), frame);
  assert.deepEqual(chat.sent, ['first line\nsecond']);
  ui.stdin.write('/help');
  await until(() => /> \/help/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => /did \/help/.test(frame()), frame);
  assert.deepEqual(chat.commands, ['/help']);
  ui.stdin.write('\u001b[A'); // Up: the last entry, the command
  await until(() => /> \/help/.test(frame()), frame);
  ui.stdin.write('\u001b[A'); // Up again: the message before it
  await until(() => /> first line\nsecond/.test(frame()), frame);
  ui.unmount();
});

test('Esc stops a reply and keeps what was said; Ctrl-C once warns, twice exits', async () => {
  const chat = new ScriptedChat(
    Array.from({ length: 200 }, (_, i) => `w${i} `),
    10,
  );
  const ui = render(<ChatApp chat={chat} />);
  const frame = () => ui.lastFrame() ?? '';
  ui.stdin.write('go');
  await until(() => /> go/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => /w3 /.test(frame()), frame);
  ui.stdin.write('\u001b'); // Esc
  await until(() => /\[stopped\]/.test(frame()), frame);
  assert.match(frame(), /w0 w1 [\s\S]*\[stopped\]/);
  assert.doesNotMatch(frame(), /w199/);
  ui.stdin.write('\u0003'); // Ctrl-C
  await until(() => /press Ctrl-C again to exit/.test(frame()), frame);
  ui.stdin.write('\u0003');
  await tick();
  ui.unmount();
});

test('a slash command that throws is an error line in the transcript; the UI goes on and the next message is sent', async () => {
  class Failing extends ScriptedChat {
    override command(line: string): CommandResult {
      if (line.startsWith('/save')) throw new Error('ENOENT: no such file or directory');
      return super.command(line);
    }
  }
  const chat = new Failing(['fine']);
  const ui = render(<ChatApp chat={chat} />);
  const frame = () => ui.lastFrame() ?? '';
  ui.stdin.write('/save /no/such/dir/x.json');
  await until(() => /> \/save/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => /\/save: ENOENT: no such file or directory/.test(frame()), frame);
  ui.stdin.write('still here?');
  await until(() => /> still here\?/.test(frame()), frame);
  ui.stdin.write('\r');
  await until(() => /fine/.test(frame()), frame);
  assert.deepEqual(chat.sent, ['still here?']);
  ui.unmount();
});
