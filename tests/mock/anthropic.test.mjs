// Self-tests for the Anthropic mock, so relay test failures on Anthropic routes can be trusted
// to be relay bugs rather than mock bugs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startAnthropicMock, REPLY_TEXT, PING_DATA } from './anthropic.mjs';

const DELAY = 2;
const SLOW = 60;
let mock;

before(async () => { mock = await startAnthropicMock({ chunkDelayMs: DELAY, slowMs: SLOW }); });
after(async () => { await mock?.close(); });

const HEADERS = { 'x-api-key': 'sk-ant-mock', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const MESSAGES = [{ role: 'user', content: 'Hi there' }]; // 8 chars → 10 + 2
const PROMPT = 12;

function post(path, body, { headers = HEADERS, signal } = {}) {
  return fetch(`${mock.url}${path}`, {
    method: 'POST', headers, signal, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
const messages = (body, o) => post('/v1/messages', { max_tokens: 64, messages: MESSAGES, ...body }, o);

// Strict parser: every event must be exactly `event:` + `data:` lines, so framing slips fail loudly.
function parseEvents(text) {
  assert.ok(text.endsWith('\n\n'), 'stream must end on a frame boundary');
  return text.slice(0, -2).split('\n\n').map((block) => {
    const m = /^event: ([a-z_]+)\ndata: (.*)$/.exec(block);
    assert.ok(m, `malformed frame: ${JSON.stringify(block)}`);
    const data = JSON.parse(m[2]);
    assert.equal(m[1], data.type, 'event: line must equal data.type');
    return { event: m[1], raw: m[2], data };
  });
}

// A compact signature of each event (name + delta/block type) for sequence assertions.
const shape = (events) => events.map(({ event, data }) => {
  if (event === 'content_block_start') return `${event}:${data.index}:${data.content_block.type}`;
  if (event === 'content_block_delta') return `${event}:${data.index}:${data.delta.type}`;
  if (event === 'content_block_stop') return `${event}:${data.index}`;
  return event;
});

const lastRec = () => mock.requests.at(-1);

// Reads a body that may be cut off mid-stream; returns what arrived and whether it ended cleanly.
async function readAll(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, clean: true };
      text += dec.decode(value, { stream: true });
    }
  } catch {
    return { text, clean: false };
  }
}

test('claude-mock stream: exact bytes, headers, sequence and usage', async () => {
  const res = await messages({ model: 'claude-mock', stream: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const rid = res.headers.get('request-id');
  assert.match(rid, /^req_mock_\d+$/);
  const text = await res.text();
  const n = rid.slice('req_mock_'.length);
  const f = (o) => `event: ${o.type}\ndata: ${JSON.stringify(o)}\n\n`;
  const expected = [
    f({ type: 'message_start', message: {
      id: `msg_mock_${n}`, type: 'message', role: 'assistant', model: 'claude-mock', content: [],
      stop_reason: null, stop_sequence: null,
      usage: { input_tokens: PROMPT, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    } }),
    f({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    `event: ping\ndata: {"type": "ping"}\n\n`,
    ...['Hello ', 'from ', 'Claude ', 'mock.'].map((t) => f({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } })),
    f({ type: 'content_block_stop', index: 0 }),
    f({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } }),
    f({ type: 'message_stop' }),
  ].join('');
  assert.equal(text, expected);
  const events = parseEvents(text);
  assert.equal(events[2].raw, PING_DATA);
  const rec = lastRec();
  assert.equal(rec.sent, text);
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/messages');
  assert.equal(rec.headers['x-api-key'], 'sk-ant-mock');
  assert.equal(rec.body.model, 'claude-mock');
  assert.equal(rec.rawBody, JSON.stringify({ max_tokens: 64, messages: MESSAGES, model: 'claude-mock', stream: true }));
  assert.equal(rec.aborted, false);
});

test('claude-mock non-stream: full message with usage; unknown models behave the same', async () => {
  for (const model of ['claude-mock', 'claude-sonnet-whatever']) {
    const res = await messages({ model, system: 'Be terse.' }); // +9 chars → ceil(17/4)=5
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const n = res.headers.get('request-id').slice('req_mock_'.length);
    assert.deepEqual(await res.json(), {
      id: `msg_mock_${n}`, type: 'message', role: 'assistant', model,
      content: [{ type: 'text', text: REPLY_TEXT }],
      stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: 15, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 4 },
    });
    assert.equal(lastRec().sent.length > 0, true);
  }
});

test('claude-mock-cached: cache fields at start, cumulative repeat in message_delta', async () => {
  const events = parseEvents(await (await messages({ model: 'claude-mock-cached', stream: true })).text());
  assert.deepEqual(events[0].data.message.usage,
    { input_tokens: PROMPT, cache_creation_input_tokens: 12, cache_read_input_tokens: 60, output_tokens: 1 });
  const delta = events.find((e) => e.event === 'message_delta').data;
  assert.deepEqual(delta.usage,
    { input_tokens: PROMPT, cache_creation_input_tokens: 12, cache_read_input_tokens: 60, output_tokens: 4 });
  assert.equal(events.at(-1).event, 'message_stop');

  const body = await (await messages({ model: 'claude-mock-cached' })).json();
  assert.deepEqual(body.usage,
    { input_tokens: PROMPT, cache_creation_input_tokens: 12, cache_read_input_tokens: 60, output_tokens: 4 });
});

test('claude-mock-tools stream: blocks, indices and input_json_delta fragments', async () => {
  const events = parseEvents(await (await messages({ model: 'claude-mock-tools', stream: true })).text());
  assert.deepEqual(shape(events), [
    'message_start',
    'content_block_start:0:text', 'ping', 'content_block_delta:0:text_delta', 'content_block_stop:0',
    'content_block_start:1:tool_use',
    'content_block_delta:1:input_json_delta', 'content_block_delta:1:input_json_delta', 'content_block_delta:1:input_json_delta',
    'content_block_stop:1',
    'content_block_start:2:tool_use', 'content_block_delta:2:input_json_delta', 'content_block_stop:2',
    'message_delta', 'message_stop',
  ]);
  const starts = events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block);
  assert.deepEqual(starts.slice(1), [
    { type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: {} },
    { type: 'tool_use', id: 'toolu_mock_2', name: 'get_time', input: {} },
  ]);
  const frags = (i) => events.filter((e) => e.event === 'content_block_delta' && e.data.index === i)
    .map((e) => e.data.delta.partial_json);
  assert.deepEqual(frags(1), ['', '{"city":', '"SF"}']);
  assert.deepEqual(frags(2), ['']);
  assert.deepEqual(JSON.parse(frags(1).join('')), { city: 'SF' });
  assert.equal(events[3].data.delta.text, 'Checking.');
  const md = events.at(-2).data;
  assert.deepEqual(md, { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 30 } });

  const body = await (await messages({ model: 'claude-mock-tools' })).json();
  assert.deepEqual(body.content, [
    { type: 'text', text: 'Checking.' },
    { type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: { city: 'SF' } },
    { type: 'tool_use', id: 'toolu_mock_2', name: 'get_time', input: {} },
  ]);
  assert.equal(body.stop_reason, 'tool_use');
  assert.equal(body.usage.output_tokens, 30);
});

test('claude-mock-thinking: thinking block with signature, then text', async () => {
  const events = parseEvents(await (await messages({ model: 'claude-mock-thinking', stream: true })).text());
  assert.deepEqual(shape(events), [
    'message_start',
    'content_block_start:0:thinking', 'content_block_delta:0:thinking_delta', 'content_block_delta:0:signature_delta',
    'content_block_stop:0',
    'content_block_start:1:text', 'content_block_delta:1:text_delta', 'content_block_stop:1',
    'message_delta', 'message_stop',
  ]);
  assert.equal(events[2].data.delta.thinking, 'Let me think.');
  assert.equal(events[3].data.delta.signature, 'sig');
  assert.equal(events[6].data.delta.text, 'Done.');
  assert.equal(events.at(-2).data.delta.stop_reason, 'end_turn');

  const body = await (await messages({ model: 'claude-mock-thinking' })).json();
  assert.deepEqual(body.content, [
    { type: 'thinking', thinking: 'Let me think.', signature: 'sig' },
    { type: 'text', text: 'Done.' },
  ]);
});

test('claude-mock-max: stop_reason max_tokens in both modes', async () => {
  const events = parseEvents(await (await messages({ model: 'claude-mock-max', stream: true })).text());
  assert.deepEqual(events.at(-2).data.delta, { stop_reason: 'max_tokens', stop_sequence: null });
  assert.equal((await (await messages({ model: 'claude-mock-max' })).json()).stop_reason, 'max_tokens');
});

test('claude-mock-overloaded: mid-stream error event ends the stream; 529 without stream', async () => {
  const res = await messages({ model: 'claude-mock-overloaded', stream: true });
  assert.equal(res.status, 200);
  const text = await res.text();
  const events = parseEvents(text);
  assert.deepEqual(shape(events), ['message_start', 'content_block_start:0:text', 'content_block_delta:0:text_delta', 'error']);
  assert.ok(text.endsWith('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'));

  const r2 = await messages({ model: 'claude-mock-overloaded' });
  assert.equal(r2.status, 529);
  assert.deepEqual(await r2.json(), {
    type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: r2.headers.get('request-id'),
  });
});

test('claude-mock-error-NNN: status and Anthropic error type, in both modes', async () => {
  const table = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error',
    404: 'not_found_error', 429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error' };
  for (const [status, type] of Object.entries(table)) {
    for (const stream of [false, true]) {
      const res = await messages({ model: `claude-mock-error-${status}`, stream });
      assert.equal(res.status, Number(status));
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.equal(res.headers.get('retry-after'), status === '429' ? '1' : null);
      const body = await res.json();
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, type);
      assert.equal(typeof body.error.message, 'string');
      assert.equal(body.request_id, res.headers.get('request-id'));
    }
  }
});

test('claude-mock-drop: socket destroyed after two deltas, no message_stop, not an abort', async () => {
  const res = await messages({ model: 'claude-mock-drop', stream: true });
  assert.equal(res.status, 200);
  const { text, clean } = await readAll(res);
  assert.equal(clean, false);
  const events = parseEvents(text);
  assert.deepEqual(shape(events), ['message_start', 'content_block_start:0:text', 'content_block_delta:0:text_delta', 'content_block_delta:0:text_delta']);
  assert.ok(!text.includes('message_stop'));
  assert.equal(lastRec().sent, text);
  assert.equal(lastRec().aborted, false);

  await assert.rejects(messages({ model: 'claude-mock-drop' }));
});

test('auth: missing/wrong x-api-key → 401, missing anthropic-version → 400', async () => {
  for (const headers of [
    { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    { ...HEADERS, 'x-api-key': 'sk-ant-wrong' },
    { ...HEADERS, 'x-api-key': undefined, authorization: 'Bearer sk-ant-mock' },
  ]) {
    const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
    const res = await messages({ model: 'claude-mock' }, { headers: clean });
    assert.equal(res.status, 401);
    const rid = res.headers.get('request-id');
    assert.match(rid, /^req_mock_\d+$/);
    assert.equal(await res.text(),
      `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"${rid}"}`);
    assert.equal(lastRec().body.model, 'claude-mock'); // still recorded
  }
  const res = await messages({ model: 'claude-mock' }, { headers: { 'x-api-key': 'sk-ant-mock', 'content-type': 'application/json' } });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message, /anthropic-version/);
});

test('body validation names the missing field', async () => {
  const cases = [
    [{ model: 'claude-mock', messages: MESSAGES }, 'max_tokens: Field required'],
    [{ model: 'claude-mock', max_tokens: '5', messages: MESSAGES }, /^max_tokens: /],
    [{ max_tokens: 5, messages: MESSAGES }, 'model: Field required'],
    [{ model: 'claude-mock', max_tokens: 5 }, 'messages: Field required'],
    [{ model: 'claude-mock', max_tokens: 5, messages: 'hi' }, /^messages: /],
    ['{not json', /pars/],
  ];
  for (const [body, msg] of cases) {
    const res = await post('/v1/messages', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    const j = await res.json();
    assert.equal(j.type, 'error');
    assert.equal(j.error.type, 'invalid_request_error');
    if (typeof msg === 'string') assert.equal(j.error.message, msg);
    else assert.match(j.error.message, msg);
    assert.equal(j.request_id, res.headers.get('request-id'));
  }
});

test('count_tokens counts string and text-block content of messages and system', async () => {
  const res = await post('/v1/messages/count_tokens', {
    model: 'claude-mock',
    system: [{ type: 'text', text: 'abcd' }], // 4
    messages: [
      { role: 'user', content: 'Hi there' }, // 8
      { role: 'assistant', content: [{ type: 'text', text: 'ok' }, { type: 'tool_use', id: 't', name: 'x', input: { a: 'zzzz' } }] }, // 2
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'fog' }] }, // 3
    ],
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { input_tokens: 10 + Math.ceil(17 / 4) });
  assert.equal(lastRec().path, '/v1/messages/count_tokens');
  const bad = await post('/v1/messages/count_tokens', { model: 'claude-mock' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.message, 'messages: Field required');
});

test('GET /v1/models lists Anthropic-shape models; unknown routes 404', async () => {
  const res = await fetch(`${mock.url}/v1/models`, { headers: HEADERS });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.has_more, false);
  assert.ok(body.data.length > 0);
  for (const m of body.data) {
    assert.deepEqual(Object.keys(m), ['type', 'id', 'display_name', 'created_at']);
    assert.equal(m.type, 'model');
  }
  assert.equal(body.first_id, body.data[0].id);
  assert.equal(body.last_id, body.data.at(-1).id);

  for (const [method, path] of [['POST', '/v1/chat/completions'], ['GET', '/v1/messages'], ['POST', '/messages']]) {
    const r = await fetch(`${mock.url}${path}`, { method, headers: HEADERS, body: method === 'POST' ? '{}' : undefined });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.type, 'not_found_error');
  }
});

test('claude-mock-slow delays headers; client abort is recorded and stops the stream', async () => {
  const t0 = Date.now();
  const ac = new AbortController();
  const res = await messages({ model: 'claude-mock-slow', stream: true }, { signal: ac.signal });
  assert.ok(Date.now() - t0 >= SLOW - 5, 'headers should wait slowMs');
  const rec = lastRec();
  const reader = res.body.getReader();
  await reader.read();
  ac.abort();
  await reader.read().catch(() => {});
  for (let i = 0; i < 100 && !rec.aborted; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(rec.aborted, true);
  assert.ok(!rec.sent.includes('message_stop'));

  // Non-stream slow: still a normal message after the delay.
  const r2 = await messages({ model: 'claude-mock-slow' });
  assert.equal((await r2.json()).content[0].text, REPLY_TEXT);
});

test('reset() clears records; close() ends in-flight responses promptly', async () => {
  mock.reset();
  assert.equal(mock.requests.length, 0);
  const m2 = await startAnthropicMock({ slowMs: 10_000 });
  assert.equal(m2.url, `http://127.0.0.1:${m2.port}`);
  const pending = fetch(`${m2.url}/v1/messages`, {
    method: 'POST', headers: HEADERS, body: JSON.stringify({ model: 'claude-mock-slow', max_tokens: 5, messages: MESSAGES }),
  }).then(() => 'resolved', () => 'rejected');
  while (m2.requests.length === 0 || m2.requests[0].body === undefined) await new Promise((r) => setTimeout(r, 5));
  const t0 = Date.now();
  await m2.close();
  assert.equal(await pending, 'rejected');
  assert.ok(Date.now() - t0 < 1000);
});
