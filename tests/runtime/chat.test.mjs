// Chat completions through the real worker: relay-echo, OpenAI pass-through (stream and not),
// usage-chunk injection and stripping, header hygiene, and the official `openai` client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call, PROVIDER_KEY } from './harness.mjs';
import { parseSse, REPLY_TEXT } from '../mock/provider.mjs';

let relay;
let key;
let record;

before(async () => {
  relay = await startRelay();
  ({ key, record } = await relay.seedKey({ team: 'team-a', user: 'ann' }));
});
after(async () => relay?.close());

const hello = [{ role: 'user', content: 'Hello there, relay!' }];

function chunks(text) {
  return parseSse(text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
}

test('relay-echo answers non-stream with a deterministic reply and records upstream usage', async () => {
  const { res, json, requestId } = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'relay-echo', messages: hello },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.match(requestId, /^req_[0-9A-Za-z]{24}$/);
  assert.equal(json.object, 'chat.completion');
  assert.equal(json.model, 'relay-echo');
  assert.equal(json.choices[0].message.content, 'relay-echo: Hello there, relay!');
  assert.equal(json.choices[0].finish_reason, 'stop');
  // "Hello there, relay!" is 19 chars -> 5 tokens; the 31-char reply -> 8 tokens.
  assert.deepEqual(json.usage, {
    prompt_tokens: 5,
    completion_tokens: 8,
    total_tokens: 13,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  });
  const row = await relay.row(requestId);
  assert.equal(row.key_id, record.id);
  assert.equal(row.team, 'team-a');
  assert.equal(row.user, 'ann');
  assert.equal(row.provider, 'relay');
  assert.equal(row.model_requested, 'relay-echo');
  assert.equal(row.stream, 0);
  assert.equal(row.status, 200);
  assert.equal(row.outcome, 'ok');
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.prompt_tokens, 5);
  assert.equal(row.completion_tokens, 8);
  assert.equal(row.finish_reason, 'stop');
  assert.equal(row.route, '/v1/chat/completions');
});

test('relay-echo streams word by word; the usage chunk appears only when asked for', async () => {
  const plain = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'relay-echo', messages: hello, stream: true },
  });
  assert.equal(plain.res.status, 200);
  assert.equal(plain.res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const events = chunks(plain.text);
  assert.equal(events.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'relay-echo: Hello there, relay!');
  assert.ok(events.every((c) => c.choices.length === 1), 'no usage-only chunk without include_usage');
  assert.ok(plain.text.endsWith('data: [DONE]\n\n'));
  const row = await relay.row(plain.requestId);
  assert.equal(row.stream, 1);
  assert.equal(row.outcome, 'ok');
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.completion_tokens, 8);
  assert.equal(row.finish_reason, 'stop');

  const withUsage = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'relay-echo', messages: hello, stream: true, stream_options: { include_usage: true } },
  });
  const last = chunks(withUsage.text).at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 8);
});

test('non-stream OpenAI pass-through returns the upstream bytes unchanged', async () => {
  relay.provider.reset();
  const { res, text, requestId } = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'mock-cached', messages: hello, x_cursor_field: { keep: true } },
    headers: { 'openai-organization': 'org-client', 'x-stainless-lang': 'js', cookie: 'a=b' },
  });
  assert.equal(res.status, 200);
  const [up] = relay.provider.requests;
  assert.equal(text, up.sent, 'client body is byte-identical to what the provider sent');
  // Header hygiene (R1.8, R1.10): the provider key replaces the relay key; client identity dropped.
  assert.equal(up.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  assert.ok(!JSON.stringify(up.headers).includes(key), 'relay key never forwarded');
  assert.equal(up.headers['openai-organization'], undefined);
  assert.equal(up.headers.cookie, undefined);
  assert.deepEqual(up.body.x_cursor_field, { keep: true }, 'unknown fields ride through');
  // Relay's own request id, not the provider's; the provider's is kept in the row.
  assert.equal(res.headers.get('x-request-id'), requestId);
  const row = await relay.row(requestId);
  assert.equal(row.upstream_request_id, 'req_mock_1');
  assert.equal(row.provider, 'openai');
  assert.equal(row.prompt_tokens, 15);
  assert.equal(row.completion_tokens, 5);
  assert.equal(row.cached_tokens, 4);
  assert.equal(row.reasoning_tokens, 2);
  assert.equal(row.usage_source, 'upstream');
  assert.ok(row.ttfb_ms >= 0 && row.duration_ms >= row.ttfb_ms);
});

test('stream with include_usage from the client: bytes identical, usage from upstream', async () => {
  relay.provider.reset();
  const body = { model: 'mock-ok', messages: hello, stream: true, stream_options: { include_usage: true } };
  const { res, text, requestId } = await call(relay, '/v1/chat/completions', { key, body });
  assert.equal(res.status, 200);
  const [up] = relay.provider.requests;
  assert.equal(up.rawBody, JSON.stringify(body), 'request forwarded as the original bytes');
  assert.equal(text, up.sent);
  const row = await relay.row(requestId);
  assert.equal(row.outcome, 'ok');
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.prompt_tokens, 15);
  assert.equal(row.completion_tokens, 5);
});

test('stream without include_usage: relay injects it upstream and strips the usage chunk', async () => {
  relay.provider.reset();
  const { text, requestId } = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'mock-ok', messages: hello, stream: true },
  });
  const [up] = relay.provider.requests;
  assert.deepEqual(up.body.stream_options, { include_usage: true });
  const upstreamEvents = up.sent.split('\n\n').filter(Boolean);
  const usageEvent = upstreamEvents.find((e) => e.includes('"choices":[]'));
  assert.ok(usageEvent, 'upstream did send a usage chunk');
  const expected = upstreamEvents.filter((e) => e !== usageEvent).map((e) => `${e}\n\n`).join('');
  assert.equal(text, expected, 'every other event byte-identical, in order');
  const row = await relay.row(requestId);
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.completion_tokens, 5);
});

test('the official openai client streams through the relay and accumulates tool calls', async () => {
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: 'mock-tools',
    messages: [{ role: 'user', content: 'weather?' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const calls = [];
  let usage;
  let finish;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.finish_reason) finish = choice.finish_reason;
      for (const tc of choice.delta.tool_calls ?? []) {
        calls[tc.index] ??= { id: '', name: '', arguments: '' };
        if (tc.id) calls[tc.index].id += tc.id;
        if (tc.function?.name) calls[tc.index].name += tc.function.name;
        if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
      }
    }
  }
  assert.deepEqual(calls, [
    { id: 'call_A', name: 'get_weather', arguments: '{"city":"SF"}' },
    { id: 'call_B', name: 'get_weather', arguments: '{"city":"NYC"}' },
  ]);
  assert.equal(finish, 'tool_calls');
  assert.equal(usage.prompt_tokens, 20);
  assert.equal(usage.completion_tokens, 12);
});

test('the official openai client: text stream and non-stream', async () => {
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'mock-long', messages: hello, stream: true });
  let text = '';
  let n = 0;
  for await (const chunk of stream) {
    n += 1;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, Array.from({ length: 100 }, (_, i) => `w${i} `).join(''));
  assert.equal(n, 102, 'role chunk + 100 words + finish; no usage chunk leaked');
  const done = await client.chat.completions.create({ model: 'mock-ok', messages: hello });
  assert.equal(done.choices[0].message.content, REPLY_TEXT);
  const echo = await client.chat.completions.create({ model: 'relay-echo', messages: [{ role: 'user', content: 'ping' }] });
  assert.equal(echo.choices[0].message.content, 'relay-echo: ping');
});

test('chunks keep their upstream timing: no buffering in the relay', async () => {
  const t0 = Date.now();
  const res = await fetch(`${relay.base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body: JSON.stringify({ model: 'mock-slow', messages: hello, stream: true }),
  });
  const arrivals = [];
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const n = new TextDecoder().decode(value).split('data: ').length - 1;
    for (let i = 0; i < n; i += 1) arrivals.push(Date.now() - t0);
  }
  // mock-slow: 1.5 s before headers, then 8 events 100 ms apart (role, 5 words, finish, [DONE]).
  assert.equal(arrivals.length, 8);
  const spread = arrivals.at(-1) - arrivals[0];
  assert.ok(spread >= 500, `events spread over ${spread} ms, not delivered in one burst`);
});

test('models list and health', async () => {
  const { res, json } = await call(relay, '/v1/models', { method: 'GET', key });
  assert.equal(res.status, 200);
  assert.deepEqual(json, {
    object: 'list',
    data: [
      { id: 'relay-echo', object: 'model', created: 1767225600, owned_by: 'relay' },
      { id: 'gpt-4o-mini', object: 'model', created: 1767225600, owned_by: 'openai' },
    ],
  });
  const one = await call(relay, '/v1/models/mock-ok', { method: 'GET', key });
  assert.deepEqual(one.json, { id: 'mock-ok', object: 'model', created: 1767225600, owned_by: 'openai' });
  const bare = await call(relay, '/models', { method: 'GET', key });
  assert.deepEqual(bare.json, json, 'same routes without /v1 (R1.2)');
  const health = await call(relay, '/health', { method: 'GET' });
  assert.equal(health.res.status, 200);
  assert.equal(health.json.status, 'ok');
});

test('CORS preflight needs no key and reflects the origin (R1.12)', async () => {
  const res = await fetch(`${relay.base}/models`, {
    method: 'OPTIONS',
    headers: { origin: 'vscode-file://vscode-app', 'access-control-request-headers': 'authorization' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), 'vscode-file://vscode-app');
  assert.equal(res.headers.get('access-control-allow-headers'), 'authorization');
  assert.equal(res.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS');
  assert.equal(res.headers.get('access-control-max-age'), '86400');
});
