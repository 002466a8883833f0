/**
 * The terminal chat (Ink + React): the transcript, the reply streaming as it is decoded, a
 * multi-line input with history, and a status line (time to first token, tok/s, context used, GPU
 * memory). Keys: Enter sends (a line ending in \ continues on the next line), Up / Down walk the
 * history, Esc stops a reply and keeps what was said, Ctrl-C twice exits.
 */
import { Box, Static, Text, useApp, useInput } from 'ink';
import { useRef, useState } from 'react';
import type { ChatEngine, ChatStatus } from '../engine/generate/chat.js';

export interface Entry {
  readonly id: number;
  readonly role: 'user' | 'assistant' | 'info' | 'error';
  readonly text: string;
}

function statusLine(s: ChatStatus, generating: boolean): string {
  const parts: string[] = [];
  if (s.last !== null) {
    parts.push(`TTFT ${s.last.timeToFirstTokenMs.toFixed(0)} ms`);
    if (s.last.tokensPerSecond !== null) parts.push(`${s.last.tokensPerSecond.toFixed(1)} tok/s`);
  }
  parts.push(`context ${s.contextUsed} / ${s.contextLimit}`);
  if (s.gpuBytes !== null) parts.push(`GPU ${(s.gpuBytes / 2 ** 30).toFixed(2)} GiB`);
  parts.push(`temp ${s.temperature}`);
  parts.push(generating ? 'Esc stops' : '/help · Ctrl-C twice exits');
  return parts.join(' · ');
}

export function ChatApp({ chat }: { readonly chat: ChatEngine }) {
  const { exit } = useApp();
  const [entries, setEntries] = useState<Entry[]>([{ id: 0, role: 'info', text: `chatting with ${chat.model} · /help for commands` }]);
  const [input, setInput] = useState('');
  const [reply, setReply] = useState<string | null>(null);
  const [status, setStatus] = useState<ChatStatus>(chat.status());
  const [armed, setArmed] = useState(false);
  const history = useRef<string[]>([]);
  const cursor = useRef(-1);
  const stop = useRef(false);
  const nextId = useRef(1);
  const generating = reply !== null;

  const add = (role: Entry['role'], text: string) => setEntries((e) => [...e, { id: nextId.current++, role, text }]);

  const submit = (text: string) => {
    history.current.push(text);
    cursor.current = -1;
    if (text.startsWith('/')) {
      // A command that fails is a message in the transcript; the conversation and the UI stay.
      let r: ReturnType<ChatEngine['command']>;
      try {
        r = chat.command(text);
      } catch (e) {
        add('error', `${text.split(/\s/)[0]}: ${e instanceof Error ? e.message : String(e)}`);
        return;
      }
      if (r.output !== '') add('info', r.output);
      setStatus(chat.status());
      if (r.exit === true) exit();
      return;
    }
    add('user', text);
    stop.current = false;
    setReply('');
    let acc = '';
    chat
      .send(text, {
        onText: (t) => {
          acc += t;
          setReply(acc);
        },
        shouldStop: () => stop.current,
      })
      .then(({ reply: r, stats }) => {
        add('assistant', stats.finish === 'aborted' ? `${r} [stopped]` : r);
      })
      .catch((e: unknown) => add('error', e instanceof Error ? e.message : String(e)))
      .finally(() => {
        setReply(null);
        setStatus(chat.status());
      });
  };

  useInput((ch, key) => {
    if (key.ctrl && ch === 'c') {
      if (armed) {
        exit();
        return;
      }
      setArmed(true);
      stop.current = true;
      setTimeout(() => setArmed(false), 2000);
      return;
    }
    if (generating) {
      if (key.escape) stop.current = true;
      return;
    }
    if (key.return) {
      if (input.endsWith('\\')) {
        setInput(`${input.slice(0, -1)}\n`);
        return;
      }
      if (input.trim() !== '') submit(input);
      setInput('');
      return;
    }
    if (key.upArrow || key.downArrow) {
      const h = history.current;
      if (h.length === 0) return;
      const c = key.upArrow ? (cursor.current < 0 ? h.length - 1 : Math.max(0, cursor.current - 1)) : cursor.current < 0 ? -1 : cursor.current + 1;
      cursor.current = c >= h.length ? -1 : c;
      setInput(cursor.current < 0 ? '' : h[cursor.current]!);
      return;
    }
    if (key.backspace || key.delete) {
      setInput(input.slice(0, -1));
      return;
    }
    if (key.escape || key.tab || key.leftArrow || key.rightArrow) return;
    if (ch !== '') setInput(input + ch);
  });

  return (
    <Box flexDirection="column">
      <Static items={entries}>
        {(e) => (
          <Box key={e.id}>
            <Text color={e.role === 'user' ? 'cyan' : e.role === 'error' ? 'red' : e.role === 'info' ? 'gray' : undefined}>
              {e.role === 'user' ? '> ' : ''}
              {e.text}
            </Text>
          </Box>
        )}
      </Static>
      {generating ? (
        <Text>{reply}</Text>
      ) : (
        <Box>
          <Text color="cyan">{'> '}</Text>
          <Text>{input}</Text>
          <Text inverse> </Text>
        </Box>
      )}
      <Text color="gray">{armed ? 'press Ctrl-C again to exit' : statusLine(status, generating)}</Text>
    </Box>
  );
}
