// Claude through the relay: native /v1/messages for Anthropic SDKs (byte-faithful, metered with
// cumulative message_delta usage), and OpenAI-format chat for Claude models, translated both
// ways — against a mock Anthropic API on loopback, with the official SDKs as clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startRelay, call } from './harness.mjs';
import { parseSse } from '../mock/provider.mjs';

let relay;
let key;

before(async () => {
  const routes = {
    'relay-claude': ['anthropic:claude-mock-error-529', 'anthropic:claude-mock'],
    'relay-mixed': ['anthropic:claude-mock-error-500', 'openai:mock-ok'],
    'relay-claude-bad': ['anthropic:claude-mock-error-400', 'anthropic:claude-mock'],
  };
  relay = await startRelay({ anthropic: { chunkDelayMs: 2 }, vars: { ROUTES: JSON.stringify(routes) } });
  ({ key } = await relay.seedKey({ team: 'claude', user: 'ann' }));
});
after(async () => relay?.close());

const ask = [{ role: 'user', content: 'Weather in SF?' }];
const anthropicHeaders = (k) => ({ 'x-api-key': k, 'anthropic-version': '2023-06-01' });

test('native /v1/messages: x-api-key relay key, provider key substituted, body relayed byte for byte', async () => {
  relay.claude.reset();
  const r = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-cached', max_tokens: 100, messages: ask } });
  assert.equal(r.res.status, 200);
  const [up] = relay.claude.requests;
  assert.equal(r.text, up.sent);
  assert.equal(up.headers['x-api-key'], 'sk-ant-mock');
  assert.equal(up.headers.authorization, undefined);
  assert.equal(up.headers['anthropic-version'], '2023-06-01');
  const row = await relay.row(r.requestId);
  const usage = r.json.usage;
  assert.equal(row.provider, 'anthropic');
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.prompt_tokens, usage.input_tokens + 12 + 60, 'prompt includes cache reads and writes');
  assert.equal(row.cached_tokens, 60);
  assert.equal(row.cache_write_tokens, 12);
  assert.equal(row.completion_tokens, usage.output_tokens);
  assert.equal(row.upstream_request_id, 'req_mock_1');
});

test('native stream keeps event: lines; usage is cumulative (overwritten, never summed)', async () => {
  relay.claude.reset();
  const r = await call(relay, '/v1/messages', {
    headers: { authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01' },
    body: { model: 'claude-mock-cached', max_tokens: 100, messages: ask, stream: true },
  });
  assert.equal(r.res.status, 200);
  assert.equal(r.text, relay.claude.requests[0].sent, 'byte-identical, event: lines included');
  assert.match(r.text, /^event: message_start\n/);
  const row = await relay.row(r.requestId);
  assert.equal(row.outcome, 'ok');
  assert.equal(row.completion_tokens, 4, 'the last message_delta value, not a sum');
  assert.equal(row.cached_tokens, 60);
  assert.equal(row.finish_reason, 'end_turn');
});

test('the official Anthropic SDK streams tool use through the relay', async () => {
  const client = new Anthropic({ apiKey: key, baseURL: relay.url, maxRetries: 0 });
  const stream = client.messages.stream({ model: 'claude-mock-tools', max_tokens: 100, messages: ask });
  const final = await stream.finalMessage();
  assert.deepEqual(
    final.content.map((b) => (b.type === 'tool_use' ? [b.type, b.name, b.input] : [b.type, b.text])),
    [['text', 'Checking.'], ['tool_use', 'get_weather', { city: 'SF' }], ['tool_use', 'get_time', {}]],
  );
  assert.equal(final.stop_reason, 'tool_use');
  assert.equal(final.usage.output_tokens, 30);
});

test('Anthropic-shaped errors: no key 401, provider 429 passes through, provider 401 is 502', async () => {
  const none = await call(relay, '/v1/messages', { body: { model: 'claude-mock', max_tokens: 10, messages: ask } });
  assert.equal(none.res.status, 401);
  assert.deepEqual(none.json.type, 'error');
  assert.equal(none.json.error.type, 'authentication_error');
  const limited = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-error-429', max_tokens: 10, messages: ask } });
  assert.equal(limited.res.status, 429);
  assert.equal(limited.json.error.type, 'rate_limit_error');
  assert.equal(limited.res.headers.get('retry-after'), '1');
  const denied = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-error-401', max_tokens: 10, messages: ask } });
  assert.equal(denied.res.status, 502);
  assert.equal(denied.json.type, 'error');
  assert.equal(denied.json.error.type, 'api_error');
  const row = await relay.row(denied.requestId);
  assert.equal(row.outcome, 'upstream_error');
});

test('native stream that drops gets one event: error; overloaded mid-stream is forwarded and recorded', async () => {
  const dropped = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-drop', max_tokens: 10, messages: ask, stream: true } });
  assert.match(dropped.text, /event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"Upstream stream ended unexpectedly."\}\}\n\n$/);
  const drow = await relay.row(dropped.requestId);
  assert.equal(drow.outcome, 'truncated');
  assert.equal(drow.usage_source, 'estimated');

  const overloaded = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-overloaded', max_tokens: 10, messages: ask, stream: true } });
  assert.match(overloaded.text, /event: error\ndata: \{"type":"error","error":\{"type":"overloaded_error","message":"Overloaded"\}\}/);
  const orow = await relay.row(overloaded.requestId);
  assert.equal(orow.outcome, 'upstream_error');
  assert.equal(orow.error_code, 'overloaded_error');
});

test('count_tokens passes through and records a free call', async () => {
  const r = await call(relay, '/v1/messages/count_tokens', { headers: anthropicHeaders(key), body: { model: 'claude-mock', messages: ask } });
  assert.equal(r.res.status, 200);
  assert.equal(typeof r.json.input_tokens, 'number');
  const row = await relay.row(r.requestId);
  assert.equal(row.route, '/v1/messages/count_tokens');
  assert.equal(row.completion_tokens, 0);
});

test('OpenAI format for a Claude model: request translated, answer translated back', async () => {
  relay.claude.reset();
  const r = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'claude-mock-cached', temperature: 1.7, messages: [{ role: 'system', content: 'Be terse.' }, ...ask] },
  });
  assert.equal(r.res.status, 200, r.text);
  const up = relay.claude.requests[0].body;
  assert.equal(up.model, 'claude-mock-cached');
  assert.equal(up.temperature, 1, 'clamped to Anthropic range (T18)');
  assert.equal(up.max_tokens, 8192, 'default max_tokens');
  assert.deepEqual(up.system, [{ type: 'text', text: 'Be terse.' }]);
  assert.equal(r.json.object, 'chat.completion');
  assert.equal(r.json.choices[0].message.content, 'Hello from Claude mock.');
  assert.equal(r.json.choices[0].finish_reason, 'stop');
  const input = r.json.usage.prompt_tokens - 72;
  assert.deepEqual(r.json.usage.prompt_tokens_details, { cached_tokens: 60, cache_write_tokens: 12 });
  assert.ok(input > 0);
  const row = await relay.row(r.requestId);
  assert.equal(row.prompt_tokens, r.json.usage.prompt_tokens);
  assert.equal(row.cached_tokens, 60);
});

test('the official openai client streams Claude tool calls with dense indices', async () => {
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'claude-mock-tools', messages: ask, stream: true, stream_options: { include_usage: true } });
  const calls = [];
  let text = '';
  let finish;
  let usage;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
      for (const tc of c.delta?.tool_calls ?? []) {
        calls[tc.index] ??= { id: '', name: '', arguments: '' };
        if (tc.id) calls[tc.index].id += tc.id;
        if (tc.function?.name) calls[tc.index].name += tc.function.name;
        if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
      }
    }
  }
  assert.equal(text, 'Checking.');
  assert.deepEqual(calls, [
    { id: 'toolu_mock_1', name: 'get_weather', arguments: '{"city":"SF"}' },
    { id: 'toolu_mock_2', name: 'get_time', arguments: '{}' },
  ]);
  assert.equal(finish, 'tool_calls');
  assert.equal(usage.completion_tokens, 30);
});

test('Claude overloaded mid-stream becomes an in-band OpenAI error and [DONE]', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'claude-mock-overloaded', messages: ask, stream: true } });
  assert.equal(r.res.status, 200);
  const events = parseSse(r.text);
  assert.equal(events.at(-1), '[DONE]');
  assert.ok(JSON.parse(events.at(-2)).error, 'an error event before [DONE]');
  const row = await relay.row(r.requestId);
  assert.equal(row.outcome, 'upstream_error');
});

test('Claude overloaded (529) and billing (402) are 503 for OpenAI clients; so is an OpenAI quota 429 (§6.7, R2.4)', async () => {
  const cases = [
    ['claude-mock-error-529', 'overloaded', null, 2],
    ['claude-mock-error-402', 'upstream_unavailable', 'false', 1],
    ['mock-quota', 'upstream_unavailable', 'false', 1],
  ];
  for (const [model, code, shouldRetry, attempts] of cases) {
    const r = await call(relay, '/v1/chat/completions', { key, body: { model, messages: ask } });
    assert.equal(r.res.status, 503, model);
    assert.equal(r.json.error.type, 'server_error', model);
    assert.equal(r.json.error.code, code, model);
    assert.equal(r.res.headers.get('x-should-retry'), shouldRetry, model);
    const row = await relay.row(r.requestId);
    assert.equal(row.outcome, 'upstream_error', model);
    assert.equal(row.error_code, code, model);
    // Overload is retried once on the same target; an empty account is not.
    assert.equal(row.attempts, attempts, model);
  }
});

test('Anthropic clients reach OpenAI-format providers too: /v1/messages translated both ways (T28, T29)', async () => {
  relay.provider.reset();
  const client = new Anthropic({ apiKey: key, baseURL: relay.url, maxRetries: 0 });
  const stream = client.messages.stream({ model: 'mock-tools', max_tokens: 100, system: 'Be terse.', messages: ask });
  const final = await stream.finalMessage();
  assert.deepEqual(
    final.content.map((b) => [b.type, b.id, b.name, b.input]),
    [['tool_use', 'call_A', 'get_weather', { city: 'SF' }], ['tool_use', 'call_B', 'get_weather', { city: 'NYC' }]],
  );
  assert.equal(final.stop_reason, 'tool_use');
  assert.equal(final.usage.output_tokens, 12);
  const up = relay.provider.requests[0].body;
  assert.deepEqual(up.messages[0], { role: 'system', content: 'Be terse.' });
  assert.equal(up.max_completion_tokens, 100);
  assert.deepEqual(up.stream_options, { include_usage: true });

  const plain = await client.messages.create({ model: 'mock-ok', max_tokens: 50, messages: ask });
  assert.deepEqual(plain.content, [{ type: 'text', text: 'Hello from the mock provider.' }]);
  assert.equal(plain.stop_reason, 'end_turn');
  assert.equal(plain.usage.output_tokens, 5);
  const query = "SELECT provider, model_requested, usage_source, completion_tokens FROM usage WHERE route = '/v1/messages' AND settled = 1 AND model_requested IN ('mock-tools', 'mock-ok') ORDER BY started_at";
  let rows = [];
  for (let i = 0; i < 100 && rows.length < 2; i += 1) {
    rows = (await relay.db.prepare(query).all()).results;
    if (rows.length < 2) await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(rows.map((r) => [r.provider, r.model_requested, r.usage_source, r.completion_tokens]), [['openai', 'mock-tools', 'upstream', 12], ['openai', 'mock-ok', 'upstream', 5]]);
});

test('/v1/messages falls back between targets, Claude to Claude and Claude to an OpenAI-format provider', async () => {
  const client = new Anthropic({ apiKey: key, baseURL: relay.url, maxRetries: 0 });
  relay.claude.reset();
  // Overloaded twice (one retry), then the second Claude target answers natively.
  const msg = await client.messages.create({ model: 'relay-claude', max_tokens: 50, messages: ask });
  assert.equal(msg.content[0].text, 'Hello from Claude mock.');
  assert.deepEqual(relay.claude.requests.map((r) => r.body.model), ['claude-mock-error-529', 'claude-mock-error-529', 'claude-mock']);
  // Streamed, falling over to OpenAI: the answer comes back as Anthropic events.
  relay.provider.reset();
  const stream = client.messages.stream({ model: 'relay-mixed', max_tokens: 50, messages: ask });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, 'Hello from the mock provider.');
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(relay.provider.requests[0].body.model, 'mock-ok');
  const query = relay.db.prepare("SELECT provider, model_upstream, attempts, outcome FROM usage WHERE model_requested IN ('relay-claude', 'relay-mixed') AND route = '/v1/messages' AND settled = 1 ORDER BY started_at");
  let rows = await query.all();
  // The streamed row settles just after the stream ends (ctx.wait_until): wait, bounded.
  for (let i = 0; i < 200 && rows.results.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 25));
    rows = await query.all();
  }
  assert.deepEqual(rows.results.map((r) => [r.provider, r.model_upstream, r.attempts, r.outcome]), [
    ['anthropic', 'claude-mock', 3, 'ok'],
    ['openai', 'mock-ok', 3, 'ok'],
  ]);
  // A 400 is the request's fault: passed through in Anthropic's shape, no other target tried.
  relay.claude.reset();
  const bad = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'relay-claude-bad', max_tokens: 10, messages: ask } });
  assert.equal(bad.res.status, 400);
  assert.equal(bad.json.type, 'error');
  assert.equal(bad.json.error.type, 'invalid_request_error');
  assert.equal(relay.claude.requests.length, 1);
});

test('Anthropic clients get §6.7 statuses: billing 402 → 503 api_error, an OpenAI-format 503 → 529 overloaded_error', async () => {
  const billing = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'claude-mock-error-402', max_tokens: 10, messages: ask } });
  assert.equal(billing.res.status, 503);
  assert.equal(billing.json.type, 'error');
  assert.equal(billing.json.error.type, 'api_error');
  assert.equal(billing.res.headers.get('x-should-retry'), 'false');
  const busy = await call(relay, '/v1/messages', { headers: anthropicHeaders(key), body: { model: 'mock-error-503', max_tokens: 10, messages: ask } });
  assert.equal(busy.res.status, 529);
  assert.equal(busy.json.error.type, 'overloaded_error');
  const row = await relay.row(busy.requestId);
  assert.equal(row.outcome, 'upstream_error');
  assert.equal(row.attempts, 2, 'retried once like any overload');
});
