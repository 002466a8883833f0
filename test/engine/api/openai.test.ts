/** The OpenAI request parser and error mapping (the server's end-to-end tests are in test/commands/serve.test.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toApiError } from '../../../src/engine/api/http.js';
import { ApiError, chunk, finishReason, fullResponse, parseChatRequest, parseCompletionRequest } from '../../../src/engine/api/openai.js';
import { ContextFullError } from '../../../src/engine/generate/session.js';
import { RemoteError } from '../../../src/engine/server/client.js';
import { ChatTemplateError } from '../../../src/engine/text/tokenizer.js';

const bad = (f: () => unknown, param: string | null, re: RegExp) =>
  assert.throws(f, (e: unknown) => e instanceof ApiError && e.status === 400 && e.param === param && re.test(e.message));

test('a chat request becomes a completion: roles, text parts, developer = system, sampling and limits', () => {
  const p = parseChatRequest({
    model: 'm',
    temperature: 0.5,
    top_p: 0.9,
    seed: -1,
    max_completion_tokens: 7,
    stop: 'END',
    stream: true,
    stream_options: { include_usage: true },
    messages: [
      { role: 'developer', content: 'be brief' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
      { role: 'assistant', content: null },
    ],
    user: 'ignored',
    presence_penalty: 0.5,
    frequency_penalty: null,
    logprobs: false,
    tools: [],
    response_format: { type: 'text' },
  });
  assert.deepEqual(p.completion.messages, [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'a\nb' },
    { role: 'assistant', content: '' },
  ]);
  assert.deepEqual(p.sampling, { temperature: 0.5, topP: 0.9, presencePenalty: 0.5, seed: 4294967295 });
  assert.equal(p.completion.maxTokens, 7);
  assert.deepEqual(p.completion.stop, ['END']);
  assert.equal(p.stream, true);
  assert.equal(p.includeUsage, true);
  assert.equal(parseChatRequest({ messages: [{ role: 'user', content: 'x' }] }).completion.maxTokens, undefined, 'no limit: up to the context');
});

test('bad chat requests name the parameter', () => {
  bad(() => parseChatRequest([]), null, /JSON object/);
  bad(() => parseChatRequest({}), 'messages', /required/);
  bad(() => parseChatRequest({ messages: [] }), 'messages', /at least one/);
  bad(() => parseChatRequest({ messages: [{ role: 'robot', content: 'x' }] }), 'messages[0].role', /one of system/);
  bad(() => parseChatRequest({ messages: [{ role: 'tool', content: 'x' }] }), 'messages[0].role', /function calling/);
  bad(
    () => parseChatRequest({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }),
    'messages[0].content[0]',
    /text model only/,
  );
  const m = { messages: [{ role: 'user', content: 'x' }] };
  bad(() => parseChatRequest({ ...m, temperature: '1' }), 'temperature', /must be a number, got the string "1"/);
  bad(() => parseChatRequest({ ...m, temperature: 2.5 }), 'temperature', /between 0 and 2/);
  bad(() => parseChatRequest({ ...m, max_tokens: 0 }), 'max_tokens', /1 or more/);
  bad(() => parseChatRequest({ ...m, max_tokens: 1.5 }), 'max_tokens', /whole number/);
  bad(() => parseChatRequest({ ...m, n: 2 }), 'n', /must be 1/);
  bad(() => parseChatRequest({ ...m, stop: [1] }), 'stop', /strings/);
  bad(() => parseChatRequest({ ...m, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }), 'stop', /at most 16/);
  bad(() => parseChatRequest({ ...m, logprobs: true }), 'logprobs', /not supported/);
  bad(() => parseChatRequest({ ...m, tools: [{ type: 'function' }] }), 'tools', /not supported/);
  bad(() => parseChatRequest({ ...m, response_format: { type: 'json_object' } }), 'response_format', /plain text/);
  bad(() => parseChatRequest({ ...m, stream: 'yes' }), 'stream', /boolean/);
});

test('a completions request: a string, token ids, or a batch of one; echo; bad prompts', () => {
  assert.equal(parseCompletionRequest({ prompt: 'hi' }).completion.prompt, 'hi');
  assert.deepEqual(parseCompletionRequest({ prompt: [1, 2, 3] }).completion.prompt, [1, 2, 3]);
  assert.equal(parseCompletionRequest({ prompt: ['hi'] }).completion.prompt, 'hi');
  assert.deepEqual(parseCompletionRequest({ prompt: [[4, 5]] }).completion.prompt, [4, 5]);
  assert.equal(parseCompletionRequest({ prompt: 'x', echo: true }).echo, true);
  bad(() => parseCompletionRequest({}), 'prompt', /required/);
  bad(() => parseCompletionRequest({ prompt: '' }), 'prompt', /empty/);
  bad(() => parseCompletionRequest({ prompt: ['a', 'b'] }), 'prompt', /one per request/);
  bad(() => parseCompletionRequest({ prompt: [1, 'a'] }), 'prompt', /string or an array of token ids/);
  bad(() => parseCompletionRequest({ prompt: 'x', suffix: 'y' }), 'suffix', /fill in the middle/);
});

test("engine errors map to HTTP: context and template problems are the client's (400), the rest the server's (500)", () => {
  const ctx = toApiError(new ContextFullError('the prompt is 600 tokens, longer than the context of 512'));
  assert.equal(ctx.status, 400);
  assert.equal(ctx.code, 'context_length_exceeded');
  assert.equal(toApiError(new RemoteError('too long', 'ContextFullError')).code, 'context_length_exceeded', 'the same through a resident server');
  assert.equal(toApiError(new ChatTemplateError('System role not supported')).status, 400);
  assert.equal(toApiError(new RangeError('token id 9999 is not in the vocabulary')).status, 400);
  const internal = toApiError(new Error('VK_ERROR_DEVICE_LOST'));
  assert.equal(internal.status, 500);
  assert.equal(internal.type, 'server_error');
});

test("responses and chunks have OpenAI's shape", () => {
  const head = { id: 'chatcmpl-1', created: 1, model: 'm', system_fingerprint: 'fp' };
  const chat = parseChatRequest({ messages: [{ role: 'user', content: 'x' }] });
  const r = {
    text: 'hello',
    tokens: [1, 2],
    finish: 'eos' as const,
    promptTokens: 5,
    contextLimit: 512,
    device: 'd',
    timeToFirstTokenMs: 1,
    prefillTokensPerSecond: 1,
    decodeTokensPerSecond: 1,
  };
  const full = fullResponse(chat, head, r, '') as { object: string; choices: { message: { content: string }; finish_reason: string }[]; usage: unknown };
  assert.equal(full.object, 'chat.completion');
  assert.equal(full.choices[0]!.message.content, 'hello');
  assert.equal(full.choices[0]!.finish_reason, 'stop');
  assert.deepEqual(full.usage, { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  assert.deepEqual((chunk(chat, head, { first: true, text: '' }) as { choices: { delta: unknown }[] }).choices[0]!.delta, { role: 'assistant', content: '' });
  assert.deepEqual((chunk(chat, head, { finish: 'length' }) as { choices: { delta: unknown; finish_reason: string }[] }).choices[0], {
    index: 0,
    delta: {},
    logprobs: null,
    finish_reason: 'length',
  });
  assert.equal(finishReason('stop'), 'stop');
  assert.equal(finishReason('context'), 'length');
});
