// Cursor's requests, replayed through the real worker from the corpus in tests/cursor/: the
// verify sequence (preflights, /models, a small chat), ask-mode Chat bodies, agent-mode
// Responses-shaped bodies and Chat bodies with Cursor's quirks — asserting the normalised
// upstream request and the Chat SSE the client gets back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRelay, call, ROOT } from './harness.mjs';
import { parseSse, REPLY_TEXT } from '../mock/provider.mjs';
import { PATCH_TEXT, REPLY_TEXT as CLAUDE_TEXT } from '../mock/anthropic.mjs';

let relay;
let key;
const corpus = (name) => JSON.parse(readFileSync(join(ROOT, 'tests', 'cursor', `${name}.json`), 'utf8'));
const ORIGIN = 'vscode-file://vscode-app';

before(async () => {
  // mock-tools stands in for a reasoning model; every other mock model refuses reasoning_effort.
  relay = await startRelay({ anthropic: { chunkDelayMs: 2 }, vars: { OPENAI_REASONING_MODELS: 'mock-tools' } });
  ({ key } = await relay.seedKey({ team: 'cursor', user: 'ann' }));
});
after(async () => relay?.close());

function text(sse) {
  return parseSse(sse).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).map((c) => c.choices[0]?.delta?.content ?? '').join('');
}

test('verify: preflights, GET /models and a small chat, all with CORS headers', async () => {
  for (const path of ['/v1/chat/completions', '/v1/models']) {
    const pre = await fetch(`${relay.url}${path}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
    assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization,content-type');
  }
  const models = await call(relay, '/v1/models', { method: 'GET', key, headers: { origin: ORIGIN } });
  assert.equal(models.res.status, 200);
  assert.equal(models.res.headers.get('access-control-allow-origin'), ORIGIN);
  assert.ok(models.json.data.some((m) => m.id === 'relay-echo'));
  const probe = await call(relay, '/v1/chat/completions', { key, headers: { origin: ORIGIN }, body: { model: 'relay-echo', messages: [{ role: 'user', content: 'Test' }], stream: false } });
  assert.equal(probe.res.status, 200);
  assert.equal(probe.json.choices[0].message.content, 'relay-echo: Test');
  const bad = await call(relay, '/v1/models', { method: 'GET', key: 'lc_prod_x_y_wrongwrongwrongwrongwrongwrong', headers: { origin: ORIGIN } });
  assert.equal(bad.res.status, 401);
  assert.equal(bad.res.headers.get('access-control-allow-origin'), ORIGIN, 'errors carry CORS too');
});

test('ask mode: a Chat-shaped body passes through byte for byte', async () => {
  relay.provider.reset();
  const body = corpus('ask-chat-shape');
  const r = await call(relay, '/chat/completions', { key, body });
  assert.equal(r.res.status, 200);
  assert.equal(relay.provider.requests[0].rawBody, JSON.stringify(body));
  assert.equal(r.text, relay.provider.requests[0].sent);
  assert.equal(text(r.text), REPLY_TEXT);
  assert.equal((await relay.row(r.requestId)).client_shape, 'chat');
});

test('agent mode: a Responses-shaped body is normalised to Chat and answered as Chat SSE', async () => {
  relay.provider.reset();
  const r = await call(relay, '/chat/completions', { key, body: corpus('agent-responses-shape') });
  assert.equal(r.res.status, 200);
  const up = relay.provider.requests[0].body;
  assert.equal(up.input, undefined);
  assert.equal(up.include, undefined);
  assert.equal(up.store, undefined);
  assert.equal(up.reasoning_effort, 'medium');
  assert.equal(up.verbosity, 'low');
  assert.deepEqual(up.messages[0], { role: 'system', content: 'You are a coding agent.' });
  const roles = up.messages.map((m) => m.role);
  assert.deepEqual(roles, ['system', 'user', 'assistant', 'tool', 'assistant', 'tool']);
  assert.deepEqual(up.messages[2].tool_calls, [{ id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '{"path":"main.py"}' } }]);
  assert.deepEqual(up.messages[3], { role: 'tool', tool_call_id: 'call_1', content: "print('hi')" });
  assert.deepEqual(up.messages[4].tool_calls, [{ id: 'call_2', type: 'custom', custom: { name: 'ApplyPatch', input: '*** Begin Patch\n*** End Patch' } }]);
  assert.deepEqual(up.tools[0], { type: 'function', function: { name: 'read_file', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] }, strict: false } });
  assert.deepEqual(up.tools[1], { type: 'custom', custom: { name: 'ApplyPatch', description: 'Apply a patch', format: { type: 'grammar', grammar: { definition: 'start: /.+/', syntax: 'lark' } } } });
  // The answer is Chat Completions SSE, as Cursor expects.
  const chunks = parseSse(r.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta?.tool_calls ?? [])).filter((t) => t.id).length, 2);
  assert.equal(parseSse(r.text).at(-1), '[DONE]');
  assert.equal((await relay.row(r.requestId)).client_shape, 'responses_in_chat');
});

test('Chat bodies with Cursor quirks are fixed: content [] and flat tools', async () => {
  relay.provider.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: corpus('chat-quirks') });
  assert.equal(r.res.status, 200);
  const up = relay.provider.requests[0].body;
  assert.equal(up.messages[1].content, null);
  assert.deepEqual(up.tools[0], { type: 'function', function: { name: 'read_file', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } } });
  assert.deepEqual(up.tools[1], { type: 'custom', custom: { name: 'ApplyPatch', format: { type: 'grammar', grammar: { definition: 'start: /.+/', syntax: 'lark' } } } });
  assert.equal(text(r.text), REPLY_TEXT);
});

test('reasoning_effort is dropped for a model that does not take it, the rest sent byte for byte', async () => {
  relay.provider.reset();
  const body = corpus('ask-chat-shape');
  const raw = JSON.stringify({ ...body, reasoning_effort: 'high' });
  const r = await call(relay, '/v1/chat/completions', { key, raw, headers: { 'content-type': 'application/json' } });
  assert.equal(r.res.status, 200, r.text);
  assert.equal(relay.provider.requests[0].rawBody, JSON.stringify(body));
  // The same body for a model in OPENAI_REASONING_MODELS keeps it.
  relay.provider.reset();
  const kept = JSON.stringify({ ...body, model: 'mock-tools', reasoning_effort: 'high' });
  const r2 = await call(relay, '/v1/chat/completions', { key, raw: kept, headers: { 'content-type': 'application/json' } });
  assert.equal(r2.res.status, 200, r2.text);
  assert.equal(relay.provider.requests[0].rawBody, kept);
});

/** Accumulates streamed tool calls by index, as the openai SDK does (strings concatenate). */
function toolCalls(sse) {
  const calls = [];
  for (const d of parseSse(sse).filter((x) => x !== '[DONE]')) {
    for (const tc of JSON.parse(d).choices[0]?.delta?.tool_calls ?? []) {
      const c = (calls[tc.index] ??= { id: '', type: '', name: '', args: '', input: '' });
      c.id += tc.id ?? '';
      c.type += tc.type ?? '';
      c.name += tc.function?.name ?? tc.custom?.name ?? '';
      c.args += tc.function?.arguments ?? '';
      c.input += tc.custom?.input ?? '';
    }
  }
  return calls;
}

const STRING_INPUT = { type: 'object', properties: { input: { type: 'string' } }, required: ['input'] };

for (const name of ['ask-chat-shape', 'agent-responses-shape', 'chat-quirks']) {
  test(`corpus ${name} works on a Claude route: translated request, Chat SSE back, custom tools as custom calls`, async () => {
    relay.claude.reset();
    const body = { ...corpus(name), model: 'claude-mock-patch' };
    const r = await call(relay, '/v1/chat/completions', { key, body });
    assert.equal(r.res.status, 200, r.text);
    assert.equal(relay.claude.requests.length, 1);
    const up = relay.claude.requests[0].body;
    const chunks = parseSse(r.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(parseSse(r.text).at(-1), '[DONE]');
    const row = await relay.row(r.requestId);
    assert.equal(row.provider, 'anthropic');
    assert.equal(row.outcome, 'ok');
    if (name === 'ask-chat-shape') {
      assert.equal(up.tools, undefined);
      assert.equal(text(r.text), CLAUDE_TEXT);
      return;
    }
    // The custom ApplyPatch tool went to Claude as a tool with one string property...
    const patchTool = up.tools.find((t) => t.name === 'ApplyPatch');
    assert.deepEqual(patchTool.input_schema, STRING_INPUT);
    assert.match(patchTool.description, /lark grammar:\nstart: \/\.\+\//);
    assert.deepEqual(up.tools.find((t) => t.name === 'read_file').input_schema.properties, { path: { type: 'string' } });
    // ...and Claude's tool_use of it came back as a `custom` call whose input is the patch text.
    const calls = toolCalls(r.text);
    assert.deepEqual(calls, [{ id: 'toolu_mock_patch', type: 'custom', name: 'ApplyPatch', args: '', input: PATCH_TEXT }]);
    assert.ok(chunks.filter((c) => c.choices[0]?.delta?.tool_calls?.[0]?.custom?.input).length > 3, 'the patch streamed in pieces');
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason).choices[0].finish_reason, 'tool_calls');
    assert.equal(row.finish_reason, 'tool_calls', 'the client\'s vocabulary');
    if (name === 'agent-responses-shape') {
      assert.deepEqual(up.system, [{ type: 'text', text: 'You are a coding agent.' }]);
      assert.equal(row.client_shape, 'responses_in_chat');
      const blocks = up.messages.flatMap((m) => m.content);
      assert.deepEqual(blocks.find((b) => b.type === 'tool_use' && b.name === 'ApplyPatch'),
        { type: 'tool_use', id: 'call_2', name: 'ApplyPatch', input: { input: '*** Begin Patch\n*** End Patch' } });
      assert.deepEqual(blocks.find((b) => b.tool_use_id === 'call_2'), { type: 'tool_result', tool_use_id: 'call_2', content: 'ok' });
      assert.ok(blocks.some((b) => b.type === 'tool_result' && b.tool_use_id === 'call_1'));
    } else {
      // content: [] on the tool-call turn leaves just the tool_use block.
      assert.deepEqual(up.messages[1], { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'read_file', input: { path: 'main.py' } }] });
    }
  });
}

test('a custom tool call on a Claude route without streaming, through the openai SDK', async () => {
  const { default: OpenAI } = await import('openai');
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  const body = { ...corpus('chat-quirks'), model: 'claude-mock-patch', stream: false };
  delete body.stream_options;
  const out = await client.chat.completions.create(body);
  assert.equal(out.choices[0].finish_reason, 'tool_calls');
  assert.equal(out.choices[0].message.content, 'Patching.');
  assert.deepEqual(out.choices[0].message.tool_calls, [{ id: 'toolu_mock_patch', type: 'custom', custom: { name: 'ApplyPatch', input: PATCH_TEXT } }]);
});
