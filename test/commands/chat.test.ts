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

const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'llama.text.json'), 'utf8')) as {
  chat: { messages: { content: string }[]; greedy_text: string; greedy: number[] };
};
const env = { ...process.env, UNICORN_VALIDATION: '0' };

test('piped: each line a turn, replies as transformers gives them; the second turn reuses the cache; commands work', () => {
  const save = path.join(scratchDir('chat'), 'talk.json');
  const input = `${ref.chat.messages[0]!.content}\n/save ${save}\nAnd then?\n/reset\n${ref.chat.messages[0]!.content}\n`;
  const r = spawnSync(process.execPath, [BIN, 'chat', modelFixture('llama'), '--temp', '0', '-n', String(ref.chat.greedy.length)], {
    input,
    encoding: 'utf8',
    env,
  });
  assert.equal(r.status, 0, r.stderr);
  const replies = r.stdout.split('\n');
  assert.equal(replies[0], ref.chat.greedy_text, "first reply = transformers' greedy chat continuation");
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

test('piped: /save to a missing folder is a message and the conversation goes on', () => {
  const dir = scratchDir('chat');
  const input = `${ref.chat.messages[0]!.content}\n/save ${path.join(dir, 'missing', 'talk.json')}\nAnd then?\n/save ${path.join(dir, 'talk.json')}\n`;
  const r = spawnSync(process.execPath, [BIN, 'chat', modelFixture('llama'), '--temp', '0', '-n', '4'], {
    input,
    encoding: 'utf8',
    env,
    timeout: 120_000,
    killSignal: 'SIGKILL',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /not saved: cannot write .*missing.*: the folder .* does not exist; the conversation is still here/);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'talk.json'), 'utf8')).messages.length, 4, 'both turns were kept and saved');
});

test('terminal UI on a pty that reports 0x0 (script, CI, docker exec -t): it opens as 80x24, stays quiet, and SIGTERM ends it', async () => {
  const { spawn } = await import('node:child_process');
  // script(1) gives the command a pty; stty makes it report 0 rows and 0 columns, as a CI runner's does.
  const cmd = `stty rows 0 cols 0; echo PID $$; exec ${process.execPath} ${BIN} chat ${modelFixture('llama')}`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const waitFor = async (re: RegExp, ms: number) => {
    const end = Date.now() + ms;
    while (!re.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return re.test(out);
  };
  try {
    assert.ok(await waitFor(/chatting with/, 30_000), `never got past opening; ${out.length} bytes of output, the last:\n${JSON.stringify(out.slice(-300))}`);
    const pid = Number(/PID (\d+)/.exec(out)![1]);
    const before = out.length;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(out.length - before < 16_384, `idle, it wrote ${out.length - before} bytes in a second`);
    process.kill(pid, 'SIGTERM');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
    assert.notEqual(code, 'still running', 'SIGTERM ended it');
    assert.match(out, /\u001b\[\?25h/, 'the cursor is shown again');
  } finally {
    child.kill('SIGKILL');
    const m = /PID (\d+)/.exec(out);
    if (m !== null)
      try {
        process.kill(Number(m[1]), 'SIGKILL');
      } catch {
        /* gone */
      }
  }
});
