// Self-tests for the mock provider, so relay test failures can be trusted to be relay bugs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMockProvider, parseSse, REPLY_TEXT } from './provider.mjs';

const DELAY = 5;
let mock;

before(async () => { mock = await startMockProvider({ chunkDelayMs: DELAY }); });
after(async () => { await mock?.close(); });

const AUTH = { authorization: 'Bearer sk-mock', 'content-type': 'application/json' };

function chat(body, { headers = AUTH, signal } = {}) {
  return fetch(`${mock.url}/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body), signal });
}

const MESSAGES = [{ role: 'user', content: 'Hi there' }]; // 8 chars → prompt 10 + 2
const PROMPT = 12;

function expectedTextChunks(id, created, model, words, usage) {
  const withUsage = usage !== undefined;
  const c = (choices, u = null) => {
    const o = { id, object: 'chat.completion.chunk', created, model, choices };
    if (withUsage) o.usage = u;
    return JSON.stringify(o);
  };
  const ch = (delta, fr = null) => [{ index: 0, delta, logprobs: null, finish_reason: fr }];
  const out = [c(ch({ role: 'assistant', content: '' }))];
  for (const w of words) out.push(c(ch({ content: w })));
  out.push(c(ch({}, 'stop')));
  if (withUsage) out.push(c([], usage));
  out.push('[DONE]');
  return out;
}

test('mock-ok stream without include_usage: exact bytes, no usage key', async () => {
  const res = await chat({ model: 'mock-ok', stream: true, messages: MESSAGES });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  assert.equal(res.headers.get('content-length'), null);
  assert.match(res.headers.get('x-request-id'), /^req_mock_\d+$/);
  const text = await res.text();
  const payloads = parseSse(text);
  const first = JSON.parse(payloads[0]);
  assert.match(first.id, /^chatcmpl-mock\d+$/);
  const expected = expectedTextChunks(first.id, first.created, 'mock-ok', ['Hello ', 'from ', 'the ', 'mock ', 'provider.']);
  assert.deepEqual(payloads, expected);
  assert.equal(text, expected.map((p) => `data: ${p}\n\n`).join(''));
  for (const p of payloads.slice(0, -1)) assert.ok(!('usage' in JSON.parse(p)));
});

test('mock-ok stream with include_usage: usage:null everywhere, then usage chunk', async () => {
  const res = await chat({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: MESSAGES });
  const payloads = parseSse(await res.text());
  const first = JSON.parse(payloads[0]);
  const usage = {
    prompt_tokens: PROMPT, completion_tokens: 5, total_tokens: PROMPT + 5,
    prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
  };
  assert.deepEqual(payloads, expectedTextChunks(first.id, first.created, 'gpt-4o-mini', REPLY_TEXT.split(/(?<= )/), usage));
  const contents = payloads.slice(0, -1).map((p) => JSON.parse(p)).map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(contents, REPLY_TEXT);
});

test('include_usage:false and mock-no-usage never send a usage chunk', async () => {
  for (const body of [
    { model: 'mock-ok', stream: true, stream_options: { include_usage: false }, messages: MESSAGES },
    { model: 'mock-no-usage', stream: true, stream_options: { include_usage: true }, messages: MESSAGES },
  ]) {
    const payloads = parseSse(await (await chat(body)).text());
    assert.equal(payloads.at(-1), '[DONE]');
    assert.ok(payloads.slice(0, -1).every((p) => JSON.parse(p).choices.length === 1), body.model);
  }
});

test('non-stream mock-ok shape', async () => {
  const res = await chat({ model: 'mock-ok', messages: MESSAGES });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  const body = await res.json();
  assert.deepEqual(body, {
    id: body.id,
    object: 'chat.completion',
    created: body.created,
    model: 'mock-ok',
    choices: [{ index: 0, message: { role: 'assistant', content: REPLY_TEXT, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: PROMPT, completion_tokens: 5, total_tokens: PROMPT + 5,
      prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
    },
    system_fingerprint: 'fp_mock',
  });
  assert.match(body.id, /^chatcmpl-mock\d+$/);
  assert.equal(typeof body.created, 'number');

  const cached = await (await chat({ model: 'mock-cached', messages: MESSAGES })).json();
  assert.equal(cached.usage.prompt_tokens_details.cached_tokens, 4);
  assert.equal(cached.usage.completion_tokens_details.reasoning_tokens, 2);
  const noUsage = await (await chat({ model: 'mock-no-usage', messages: MESSAGES })).json();
  assert.ok(!('usage' in noUsage));
});

test('auth failure gives OpenAI 401 body', async () => {
  for (const headers of [{ 'content-type': 'application/json' }, { authorization: 'Bearer wrong' }]) {
    const res = await chat({ model: 'mock-ok', messages: MESSAGES }, { headers });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('x-request-id'), /^req_mock_\d+$/);
    assert.deepEqual(await res.json(), {
      error: { message: 'Incorrect API key provided: sk-***.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
    });
  }
});

test('error models return status and OpenAI-shaped body, stream or not', async () => {
  for (const status of [400, 401, 403, 404, 413, 422, 429, 500, 503]) {
    for (const stream of [false, true]) {
      const res = await chat({ model: `mock-error-${status}`, stream, messages: MESSAGES });
      assert.equal(res.status, status);
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.equal(res.headers.get('retry-after'), status === 429 ? '1' : null);
      const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
      assert.deepEqual(await res.json(), { error: { message: `mock ${status} error`, type, param: null, code: `mock_${status}` } });
    }
  }
});

test('unknown route 404 and /v1/models list', async () => {
  const res = await fetch(`${mock.url}/images/generations`, { method: "POST", headers: AUTH, body: "{}" });
  assert.equal(res.status, 404);
  const err = (await res.json()).error;
  assert.deepEqual(Object.keys(err), ['message', 'type', 'param', 'code']);
  assert.equal(err.type, 'invalid_request_error');
  const models = await (await fetch(`${mock.url}/models`, { headers: AUTH })).json();
  assert.equal(models.object, 'list');
  assert.ok(models.data.some((m) => m.id === 'mock-ok' && m.object === 'model'));
});

test('mock-drop ends without [DONE]', async () => {
  const res = await chat({ model: 'mock-drop', stream: true, messages: MESSAGES });
  assert.equal(res.status, 200);
  const decoder = new TextDecoder();
  let text = '';
  let failed = false;
  try {
    for await (const part of res.body) text += decoder.decode(part, { stream: true });
  } catch {
    failed = true; // undici reports the truncated chunked body as an error
  }
  assert.ok(failed, 'truncated stream should error on the client');
  const payloads = parseSse(text);
  assert.equal(payloads.length, 4);
  assert.ok(!text.includes('[DONE]'));
  assert.equal(payloads.slice(1).map((p) => JSON.parse(p).choices[0].delta.content).join(''), 'Hello from the ');
});

test('mock-tools stream accumulates to two tool calls', async () => {
  const payloads = parseSse(await (await chat({ model: 'mock-tools', stream: true, stream_options: { include_usage: true }, messages: MESSAGES })).text());
  assert.equal(payloads.at(-1), '[DONE]');
  const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p));
  const calls = [];
  for (const c of chunks) {
    for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', name: '', arguments: '' };
      if (tc.id) calls[tc.index].id += tc.id;
      if (tc.function?.name) calls[tc.index].name += tc.function.name;
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
  }
  assert.deepEqual(calls, [
    { id: 'call_A', name: 'get_weather', arguments: '{"city":"SF"}' },
    { id: 'call_B', name: 'get_weather', arguments: '{"city":"NYC"}' },
  ]);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'tool_calls');
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.total_tokens, 32);
});

test('mock-comments uses CRLF and keep-alive comments; parseSse ignores comments', async () => {
  const text = await (await chat({ model: 'mock-comments', stream: true, messages: MESSAGES })).text();
  assert.ok(text.includes('\r\n\r\n'));
  assert.ok(text.includes(': keep-alive\n\n'));
  const payloads = parseSse(text);
  assert.equal(payloads.length, 8);
  assert.equal(payloads.at(-1), '[DONE]');
});

test('requests are recorded; client abort sets aborted', async () => {
  mock.reset();
  const ac = new AbortController();
  const res = await chat({ model: 'mock-infinite', stream: true, messages: MESSAGES }, { signal: ac.signal });
  const reader = res.body.getReader();
  await reader.read();
  ac.abort();
  await reader.read().catch(() => {});
  for (let i = 0; i < 100 && !mock.requests[0]?.aborted; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(mock.requests.length, 1);
  const rec = mock.requests[0];
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/chat/completions');
  assert.equal(rec.headers.authorization, 'Bearer sk-mock');
  assert.equal(rec.body.model, 'mock-infinite');
  assert.equal(rec.rawBody, JSON.stringify({ model: 'mock-infinite', stream: true, messages: MESSAGES }));
  assert.equal(rec.aborted, true);
  mock.reset();
  assert.equal(mock.requests.length, 0);
});

test('mock-long chunks arrive spread out over time', async () => {
  const t0 = performance.now();
  const res = await chat({ model: 'mock-long', stream: true, messages: MESSAGES });
  let reads = 0;
  let text = '';
  const decoder = new TextDecoder();
  for await (const part of res.body) { reads++; text += decoder.decode(part, { stream: true }); }
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 0.8 * 100 * DELAY, `elapsed ${elapsed}ms`);
  assert.ok(reads > 20, `only ${reads} reads`);
  const payloads = parseSse(text);
  assert.equal(payloads.length, 103);
  assert.equal(JSON.parse(payloads[100]).choices[0].delta.content, 'w99 ');
});

test('close() ends a hanging request instead of hanging the test', async () => {
  const m = await startMockProvider();
  const pending = fetch(`${m.url}/chat/completions`, {
    method: 'POST', headers: AUTH, body: JSON.stringify({ model: 'mock-hang', messages: MESSAGES }),
  });
  for (let i = 0; i < 200 && m.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(m.requests.length, 1);
  await m.close();
  await assert.rejects(pending);
});
