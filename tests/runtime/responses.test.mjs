// The Responses API through the real worker with the official `openai` client: OpenAI
// pass-through (create, stream, tools, the stored-response routes), a Chat-only upstream and
// Claude translated through the Chat hub, relay-echo, stateless refusals and mid-stream drops.
// Each request is checked against what the upstream received and the one usage row it left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call, PROVIDER_KEY } from './harness.mjs';
import { startMockProvider } from '../mock/provider.mjs';
import { RESPONSES_WORDS } from '../mock/responses.mjs';
import { REPLY_TEXT as CLAUDE_TEXT, inputTokens } from '../mock/anthropic.mjs';

const NATIVE_TEXT = RESPONSES_WORDS.join('');
const CHAT_TEXT = 'Hello from the mock provider.';

let relay;
let compat;
let key;
let client;

before(async () => {
  compat = await startMockProvider({ apiKey: 'sk-compat' });
  const providers = {
    compat: { kind: 'openai-compatible', base_url: compat.url, key_secret: 'COMPAT_KEY', models: ['compat-*'] },
  };
  const routes = {
    'compat-tools': ['compat:mock-tools'],
    'compat-drop': ['compat:mock-drop'],
    'compat-long': ['compat:mock-long'],
  };
  relay = await startRelay({
    anthropic: true,
    vars: { PROVIDERS: JSON.stringify(providers), ROUTES: JSON.stringify(routes), COMPAT_KEY: 'sk-compat' },
  });
  ({ key } = await relay.seedKey({ team: 'resp', user: 'ann' }));
  client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
});
after(async () => {
  await relay?.close();
  await compat?.close();
});

/** The newest settled row, once the request count reached `n`. */
async function newestRow(n) {
  for (let i = 0; i < 400; i++) {
    const rows = await relay.rows();
    const last = rows.at(-1);
    if (rows.length >= n && last?.settled === 1) return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no settled row #${n}`);
}

function tokens(row) {
  return [row.prompt_tokens, row.cached_tokens, row.cache_write_tokens, row.completion_tokens, row.reasoning_tokens];
}

/** Client events, checked for `event:` = `data.type` and sequence numbers from 0. */
function events(text) {
  const out = [];
  for (const block of text.split('\n\n').filter(Boolean)) {
    const lines = block.split('\n');
    const name = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = JSON.parse(lines.find((l) => l.startsWith('data: ')).slice(6));
    assert.equal(data.type, name);
    assert.equal(data.sequence_number, out.length);
    out.push(data);
  }
  return out;
}

test('OpenAI pass-through: the client bytes reach OpenAI unchanged, usage from the Response', async () => {
  relay.provider.reset();
  const raw = '{ "model":"mock-cached",  "input":"Say hi", "store":false, "x_future_param":{"a":1} }';
  const r = await call(relay, '/v1/responses', { key, raw, headers: { 'content-type': 'application/json', 'openai-organization': 'org-client' } });
  assert.equal(r.res.status, 200);
  const [up] = relay.provider.requests;
  assert.equal(up.path, '/v1/responses');
  assert.equal(up.rawBody, raw, 'byte for byte');
  assert.equal(up.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  assert.equal(up.headers['openai-organization'], undefined);
  assert.equal(r.text, up.sent, 'the answer comes back byte for byte');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.route, row.client_shape, row.provider, row.stream, row.outcome], ['/v1/responses', 'responses', 'openai', 0, 'ok']);
  const u = r.json.usage;
  assert.deepEqual(tokens(row), [u.input_tokens, 4, 0, 6, 2]);
  assert.equal(row.usage_source, 'upstream');
});

test('OpenAI pass-through stream: SSE byte for byte (event: lines kept), usage from response.completed', async () => {
  relay.provider.reset();
  const r = await call(relay, '/responses', { key, body: { model: 'mock-cached', input: 'Say hi', stream: true } });
  assert.equal(r.res.status, 200);
  assert.match(r.res.headers.get('content-type'), /^text\/event-stream/);
  const [up] = relay.provider.requests;
  assert.equal(r.text, up.sent);
  const evs = events(r.text);
  assert.equal(evs.at(-1).type, 'response.completed');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.route, row.client_shape, row.stream, row.outcome, row.finish_reason], ['/responses', 'responses', 1, 'ok', 'completed']);
  assert.deepEqual(tokens(row), [evs.at(-1).response.usage.input_tokens, 4, 0, 6, 2]);
});

test('openai client against OpenAI: create, stream with tools, retrieve, input_items, delete, cancel', async () => {
  const n = await relay.count();
  const created = await client.responses.create({ model: 'mock-ok', input: 'Hi', store: true });
  assert.equal(created.output_text, NATIVE_TEXT);
  // State lives on OpenAI: a follow-up by id passes through (the mock checks the id exists).
  const followUp = await client.responses.create({ model: 'mock-ok', input: 'And?', previous_response_id: created.id });
  assert.equal(followUp.previous_response_id, created.id);
  const stream = client.responses.stream({ model: 'mock-tools', input: 'Weather?', tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object' } }] });
  const args = [];
  for await (const ev of stream) if (ev.type === 'response.function_call_arguments.delta') args.push(ev.delta);
  const final = await stream.finalResponse();
  assert.deepEqual(final.output.map((o) => [o.type, o.call_id, o.arguments]), [
    ['function_call', 'call_A', '{"city":"SF"}'],
    ['function_call', 'call_B', '{"city":"NYC"}'],
  ]);
  assert.deepEqual(args, ['{"city":', '"SF"}', '{"city":"NYC"}']);
  const toolRow = await newestRow(n + 3);
  assert.deepEqual([toolRow.stream, toolRow.outcome, toolRow.completion_tokens], [1, 'ok', 12]);

  relay.provider.reset();
  const got = await client.responses.retrieve(created.id);
  assert.equal(got.id, created.id);
  assert.equal(got.output_text, NATIVE_TEXT);
  const items = await client.responses.inputItems.list(created.id, { limit: 5 });
  assert.deepEqual(items.data.map((i) => i.content[0].text), ['Hi']);
  await assert.rejects(client.responses.cancel(created.id), (e) => e.status === 400 && /not in progress/.test(e.message));
  const deleted = await client.responses.delete(created.id);
  assert.deepEqual(deleted, { id: created.id, object: 'response', deleted: true });
  await assert.rejects(client.responses.retrieve(created.id), (e) => e.status === 404);
  assert.deepEqual(
    relay.provider.requests.map((q) => [q.method, q.path, q.headers.authorization]),
    [
      ['GET', `/v1/responses/${created.id}`, `Bearer ${PROVIDER_KEY}`],
      ['GET', `/v1/responses/${created.id}/input_items?limit=5`, `Bearer ${PROVIDER_KEY}`],
      ['POST', `/v1/responses/${created.id}/cancel`, `Bearer ${PROVIDER_KEY}`],
      ['DELETE', `/v1/responses/${created.id}`, `Bearer ${PROVIDER_KEY}`],
      ['GET', `/v1/responses/${created.id}`, `Bearer ${PROVIDER_KEY}`],
    ],
  );
  const rows = (await relay.rows()).slice(n + 3);
  assert.equal(rows.length, 5, 'one row per stored-response call');
  assert.deepEqual(rows.map((r) => [r.method, r.status, r.provider]), [
    ['GET', 200, 'openai'], ['GET', 200, 'openai'], ['POST', 400, 'openai'], ['DELETE', 200, 'openai'], ['GET', 404, 'openai'],
  ]);
});

test('Chat-only upstream: translated to Chat Completions and back, non-stream', async () => {
  compat.reset();
  const { data, response } = await client.responses
    .create({ model: 'compat-ok', instructions: 'Be brief.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi there' }] }], max_output_tokens: 50, store: true })
    .withResponse();
  assert.equal(data.output_text, CHAT_TEXT);
  assert.equal(data.object, 'response');
  assert.match(data.id, /^resp_/);
  assert.equal(data.status, 'completed');
  assert.equal(data.store, false, 'nothing is stored on a translated route');
  assert.equal(data.output[0].type, 'message');
  const [up] = compat.requests;
  assert.equal(up.path, '/v1/chat/completions');
  assert.equal(up.headers.authorization, 'Bearer sk-compat');
  assert.deepEqual(up.body, {
    model: 'compat-ok',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi there' }] }],
    max_completion_tokens: 50,
  });
  const prompt = 10 + Math.ceil('Be brief.'.length / 4);
  assert.deepEqual(data.usage, { input_tokens: prompt, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: prompt + 5 });
  const row = await relay.row(response.headers.get('x-request-id'));
  assert.deepEqual([row.route, row.client_shape, row.provider, row.outcome, row.usage_source], ['/v1/responses', 'responses', 'compat', 'ok', 'upstream']);
  assert.deepEqual(tokens(row), [prompt, 0, 0, 5, 0]);
});

test('Chat-only upstream stream: text and tool calls as Responses events, usage asked for and recorded', async () => {
  compat.reset();
  const n = await relay.count();
  const stream = client.responses.stream({ model: 'compat-ok', input: 'Hi' });
  const deltas = [];
  for await (const ev of stream) if (ev.type === 'response.output_text.delta') deltas.push(ev.delta);
  const final = await stream.finalResponse();
  assert.equal(deltas.join(''), CHAT_TEXT);
  assert.equal(final.output_text, CHAT_TEXT);
  assert.deepEqual(compat.requests[0].body.stream_options, { include_usage: true });
  assert.equal(final.usage.output_tokens, 5);
  const row = await newestRow(n + 1);
  assert.deepEqual([row.stream, row.outcome, row.usage_source, row.completion_tokens], [1, 'ok', 'upstream', 5]);

  compat.reset();
  const tools = client.responses.stream({ model: 'compat-tools', input: 'Weather?', tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }] });
  const names = [];
  for await (const ev of tools) names.push(ev.type);
  const out = (await tools.finalResponse()).output;
  assert.deepEqual(out.map((o) => [o.type, o.call_id, o.name, o.arguments, o.status]), [
    ['function_call', 'call_A', 'get_weather', '{"city":"SF"}', 'completed'],
    ['function_call', 'call_B', 'get_weather', '{"city":"NYC"}', 'completed'],
  ]);
  assert.equal(names.filter((t) => t === 'response.output_item.done').length, 2);
  assert.equal(names.at(-1), 'response.completed');
  assert.deepEqual(compat.requests[0].body.tools, [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false } }]);
  const toolRow = await newestRow(n + 2);
  assert.deepEqual([toolRow.model_upstream, toolRow.prompt_tokens, toolRow.completion_tokens], ['mock-tools', 20, 12]);
});

test('Claude through the Chat hub: create and stream with tools, cache tokens recorded', async () => {
  relay.claude.reset();
  const { data, response } = await client.responses.create({ model: 'claude-mock-cached', instructions: 'Be brief.', input: 'Hi' }).withResponse();
  assert.equal(data.output_text, CLAUDE_TEXT);
  const [up] = relay.claude.requests;
  assert.equal(up.path, '/v1/messages');
  assert.deepEqual(up.body.system, [{ type: 'text', text: 'Be brief.' }]);
  assert.deepEqual(up.body.messages, [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
  const input = inputTokens(up.body);
  assert.deepEqual(data.usage, { input_tokens: input + 72, input_tokens_details: { cached_tokens: 60 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input + 76 });
  const row = await relay.row(response.headers.get('x-request-id'));
  assert.deepEqual([row.provider, row.client_shape, row.outcome], ['anthropic', 'responses', 'ok']);
  assert.deepEqual(tokens(row), [input + 72, 60, 12, 4, 0]);

  const n = await relay.count();
  const stream = client.responses.stream({ model: 'claude-mock-tools', input: 'Weather?', tools: [
    { type: 'function', name: 'get_weather', parameters: { type: 'object' } },
    { type: 'function', name: 'get_time', parameters: { type: 'object' } },
  ] });
  for await (const ev of stream) assert.ok(ev.type);
  const final = await stream.finalResponse();
  assert.deepEqual(final.output.map((o) => [o.type, o.type === 'message' ? o.content[0].text : o.call_id, o.arguments]), [
    ['message', 'Checking.', undefined],
    ['function_call', 'toolu_mock_1', '{"city":"SF"}'],
    ['function_call', 'toolu_mock_2', '{}'],
  ]);
  const streamed = await newestRow(n + 1);
  assert.deepEqual([streamed.provider, streamed.stream, streamed.outcome, streamed.completion_tokens, streamed.finish_reason], ['anthropic', 1, 'ok', 30, 'tool_calls']);
});

test('relay-echo speaks Responses too, stream and not', async () => {
  const created = await client.responses.create({ model: 'relay-echo', input: 'ping' });
  assert.equal(created.output_text, 'relay-echo: ping');
  const r = await call(relay, '/v1/responses', { key, body: { model: 'relay-echo', input: 'ping', stream: true } });
  const evs = events(r.text);
  assert.deepEqual([evs[0].type, evs[1].type, evs.at(-1).type], ['response.created', 'response.in_progress', 'response.completed']);
  assert.equal(evs.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), 'relay-echo: ping');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.outcome, row.usage_source], ['relay', 'ok', 'upstream']);
});

test('translated routes are stateless and leave hosted tools out; bad input is a 400 naming the param', async () => {
  await assert.rejects(
    client.responses.create({ model: 'compat-ok', input: 'Hi', previous_response_id: 'resp_x' }),
    (e) => e.status === 400 && e.param === 'previous_response_id' && /keeps no previous responses/.test(e.message),
  );
  relay.claude.reset();
  const hosted = await call(relay, '/v1/responses', { key, body: { model: 'claude-mock', input: 'Hi', tools: [{ type: 'web_search' }, { type: 'function', name: 'ls', parameters: { type: 'object' } }] } });
  assert.equal(hosted.res.status, 200);
  assert.deepEqual(relay.claude.requests[0].body.tools.map((t) => t.name), ['ls'], 'web_search runs on OpenAI only');
  const r = await call(relay, '/v1/responses', { key, body: { model: 'claude-mock', input: 'Hi', tool_choice: { type: 'web_search' } } });
  assert.equal(r.res.status, 400);
  assert.equal(r.json.error.param, 'tool_choice.type');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.status, row.outcome, row.error_code, row.client_shape], [400, 'relay_error', 'invalid_request', 'responses']);
  const bad = await call(relay, '/v1/responses', { key, body: { model: 'compat-ok', input: [{ type: 'function_call_output', call_id: 'c' }] } });
  assert.deepEqual([bad.res.status, bad.json.error.param], [400, 'input[0].output']);
  relay.provider.reset();
  const dup = await call(relay, '/v1/responses', { key, raw: '{"model":"mock-ok","input":"Hi","model":"mock-cached"}' });
  assert.deepEqual([dup.res.status, dup.json.error.param], [400, 'model'], 'a repeated key is refused, even for the pass-through');
  assert.equal(relay.provider.requests.length, 0);
  assert.equal((await relay.row(dup.requestId)).status, 400);
  const none = await call(relay, '/v1/responses', { body: { model: 'compat-ok', input: 'Hi' } });
  assert.equal(none.res.status, 401);
  const unknown = await call(relay, '/v1/responses', { key, body: { model: 'nope', input: 'Hi' } });
  assert.deepEqual([unknown.res.status, unknown.json.error.param], [404, 'model']);
});

test('a mid-stream drop ends with error + response.failed and a truncated row, on both paths', async () => {
  for (const model of ['compat-drop', 'mock-drop']) {
    const r = await call(relay, '/v1/responses', { key, body: { model, input: 'Hi', stream: true } });
    assert.equal(r.res.status, 200);
    const evs = events(r.text);
    assert.deepEqual(evs.slice(-2).map((e) => e.type), ['error', 'response.failed'], model);
    assert.equal(evs.at(-1).response.status, 'failed');
    assert.equal(evs.at(-1).response.error.code, 'upstream_stream_error');
    const row = await relay.row(r.requestId);
    assert.deepEqual([row.outcome, row.error_code, row.usage_source], ['truncated', 'truncated', 'estimated'], model);
  }
});

test('a client that hangs up mid-stream leaves one client_cancelled row, on both paths', async () => {
  for (const model of ['compat-long', 'mock-long']) {
    const before = await relay.count();
    const controller = new AbortController();
    const res = await fetch(`${relay.base}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
      body: JSON.stringify({ model, input: 'Hi', stream: true }),
      signal: controller.signal,
    });
    const reader = res.body.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /^event: response\.created\n/);
    controller.abort();
    await reader.read().catch(() => {});
    const requestId = res.headers.get('x-request-id');
    const row = await relay.row(requestId, { timeoutMs: 10000 });
    assert.equal(row.outcome, 'client_cancelled', model);
    assert.equal(await relay.count(), before + 1, 'exactly one row');
  }
});
