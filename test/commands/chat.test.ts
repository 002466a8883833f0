/**
 * `unicorn chat` end to end: piped (line by line) against transformers' chat continuation, and the
 * real terminal UI driven in tmux (send-keys, capture-pane).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BIN, FIXTURES, modelFixture, scratchDir } from '../support/paths.js';

const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as { chat: { messages: { content: string }[]; greedy_text: string; greedy: number[] } };
const env = { ...process.env, UNICORN_VALIDATION: '0' };

test('piped: each line a turn, replies as transformers gives them; the second turn reuses the cache; commands work', () => {
  const save = path.join(scratchDir('chat'), 'talk.json');
  const input = `${ref.chat.messages[0]!.content}\n/save ${save}\nAnd then?\n/reset\n${ref.chat.messages[0]!.content}\n`;
  const r = spawnSync(process.execPath, [BIN, 'chat', modelFixture('llama'), '--temp', '0', '-n', String(ref.chat.greedy.length)], { input, encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const replies = r.stdout.split('\n');
  assert.equal(replies[0], ref.chat.greedy_text, 'first reply = transformers\' greedy chat continuation');
  assert.equal(replies[2], ref.chat.greedy_text, 'after /reset the same question gets the same reply');
  const stats = r.stderr.split('\n').filter((l) => l.startsWith('['));
  assert.equal(stats.length, 3);
  assert.match(stats[1]!, /\(\d+ cached\)/);
  assert.ok(Number(/\((\d+) cached\)/.exec(stats[1]!)![1]) > 20, 'the second turn prefilled only its new tokens');
  const saved = JSON.parse(fs.readFileSync(save, 'utf8'));
  assert.equal(saved.messages.length, 2);
  assert.equal(saved.messages[1].content, ref.chat.greedy_text);
});

test('terminal UI in tmux: type, Enter, the reply and the status line appear; Ctrl-C twice exits', () => {
  const session = `unicorn-test-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const cmd = `${process.execPath} ${BIN} chat ${modelFixture('llama')} --temp 0 -n ${ref.chat.greedy.length}; echo EXITED $?; sleep 30`;
  tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '40', '-e', 'UNICORN_VALIDATION=0', cmd);
  const capture = () => tmux('capture-pane', '-p', '-t', session);
  const waitFor = (re: RegExp, ms = 30_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const c = capture();
      if (re.test(c)) return c;
      spawnSync('sleep', ['0.2']);
    }
    throw new Error(`timed out waiting for ${re}; screen:\n${capture()}`);
  };
  try {
    waitFor(/chatting with/);
    tmux('send-keys', '-t', session, '-l', ref.chat.messages[0]!.content);
    tmux('send-keys', '-t', session, 'Enter');
    const screen = waitFor(/TTFT \d+ ms · [\d.]+ tok\/s · context \d+ \/ \d+ · GPU/);
    assert.match(screen, new RegExp(`> ${ref.chat.messages[0]!.content.replace('.', '\\.')}`));
    // The reply as the terminal shows it (printable part of transformers' text).
    const printable = ref.chat.greedy_text.replace(/[\u0000-\u001f\ufffd]/g, '').slice(0, 8);
    assert.ok(screen.includes(printable), `reply ${JSON.stringify(printable)} on screen:\n${screen}`);
    tmux('send-keys', '-t', session, 'C-c');
    waitFor(/press Ctrl-C again to exit/);
    tmux('send-keys', '-t', session, 'C-c');
    waitFor(/EXITED 0/);
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
  }
});
