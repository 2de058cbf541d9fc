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

let relay;
let key;
const corpus = (name) => JSON.parse(readFileSync(join(ROOT, 'tests', 'cursor', `${name}.json`), 'utf8'));
const ORIGIN = 'vscode-file://vscode-app';

before(async () => {
  relay = await startRelay({ anthropic: { chunkDelayMs: 2 } });
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

test('the Responses-shaped body reaches a Claude route too (function tools), answered as Chat SSE', async () => {
  relay.claude.reset();
  const body = corpus('agent-responses-shape');
  body.model = 'claude-mock';
  body.input = body.input.filter((i) => !i.type?.startsWith('custom_tool'));
  body.tools = body.tools.filter((t) => t.type === 'function');
  const r = await call(relay, '/v1/chat/completions', { key, body });
  assert.equal(r.res.status, 200, r.text);
  const up = relay.claude.requests[0].body;
  assert.deepEqual(up.system, [{ type: 'text', text: 'You are a coding agent.' }]);
  assert.deepEqual(up.tools.map((t) => t.name), ['read_file']);
  assert.ok(up.messages.some((m) => m.role === 'user' && m.content.some((b) => b.type === 'tool_result' && b.tool_use_id === 'call_1')));
  assert.equal(text(r.text), 'Hello from Claude mock.');
  assert.equal(parseSse(r.text).at(-1), '[DONE]');
});
