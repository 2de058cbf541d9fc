// Bad input and failing upstreams through the real worker: each case asserts the exact status
// and body, and that the request left exactly one usage row with the right outcome.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call } from './harness.mjs';
import { parseSse } from '../mock/provider.mjs';

let relay;
let key;

before(async () => {
  relay = await startRelay({ vars: { MAX_BODY_BYTES: '4096' } });
  ({ key } = await relay.seedKey());
});
after(async () => relay?.close());

const messages = [{ role: 'user', content: 'hi' }];

/** Runs one request and checks it left exactly one (settled) row; returns the row too. */
async function once(path, opts) {
  const before = await relay.count();
  const r = await call(relay, path, opts);
  const row = await relay.row(r.requestId);
  assert.equal(await relay.count(), before + 1, 'exactly one usage row');
  return { ...r, row };
}

function openaiError(message, type, param, code) {
  return { error: { message, type, param, code } };
}

test('missing, malformed, unknown and revoked keys get 401 invalid_api_key', async () => {
  const missing = await once('/v1/chat/completions', { body: { model: 'relay-echo', messages } });
  assert.equal(missing.res.status, 401);
  assert.deepEqual(
    missing.json,
    openaiError(
      "You didn't provide an API key. You need to provide your relay key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      'invalid_request_error',
      null,
      'invalid_api_key',
    ),
  );
  assert.equal(missing.res.headers.get('access-control-allow-origin'), '*');
  assert.equal(missing.row.outcome, 'relay_error');
  assert.equal(missing.row.error_code, 'invalid_api_key');
  assert.equal(missing.row.status, 401);

  const malformed = await once('/v1/chat/completions', { key: 'not-a-relay-key-at-all', body: { model: 'relay-echo', messages } });
  assert.equal(malformed.res.status, 401);
  assert.deepEqual(malformed.json, openaiError('Incorrect API key provided: not-a-re****-all.', 'invalid_request_error', null, 'invalid_api_key'));

  const unknownKey = 'lc_test_team-a_ann_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef';
  const unknown = await once('/v1/chat/completions', { key: unknownKey, body: { model: 'relay-echo', messages } });
  assert.equal(unknown.res.status, 401);
  assert.deepEqual(unknown.json, openaiError('Incorrect API key provided: lc_test_****cdef.', 'invalid_request_error', null, 'invalid_api_key'));

  const { key: revokedKey } = await relay.seedKey({ status: 'revoked' });
  const revoked = await once('/v1/models', { method: 'GET', key: revokedKey });
  assert.equal(revoked.res.status, 401);
  assert.deepEqual(revoked.json, openaiError('This API key has been revoked.', 'invalid_request_error', null, 'invalid_api_key'));

  const { key: expiredKey } = await relay.seedKey({ expires_at: '2020-01-01T00:00:00.000Z' });
  const expired = await once('/v1/models', { method: 'GET', key: expiredKey });
  assert.equal(expired.res.status, 401);
  assert.deepEqual(expired.json, openaiError('This API key has expired.', 'invalid_request_error', null, 'invalid_api_key'));

  const anthropic = await once('/v1/models', { method: 'GET', headers: { 'anthropic-version': '2023-06-01' } });
  assert.equal(anthropic.res.status, 401);
  assert.equal(anthropic.json.type, 'error');
  assert.equal(anthropic.json.error.type, 'authentication_error');
});

test('invalid bodies get 400 invalid_request_error naming the param', async () => {
  const cases = [
    [{ raw: '{"model": "relay-echo", ' }, 'We could not parse the JSON body of your request. The body must be a JSON object.', null],
    [{ body: { messages } }, 'You must provide a model parameter.', 'model'],
    [{ body: { model: 42, messages } }, "Invalid type for 'model': expected a string, but got an integer instead.", 'model'],
    [{ body: { model: 'relay-echo' } }, "Missing required parameter: 'messages'.", 'messages'],
    [{ body: { model: 'relay-echo', messages: [] } }, "'messages' must contain at least one item.", 'messages'],
    [{ body: { model: 'relay-echo', messages: 'hi' } }, "Invalid type for 'messages': expected an array, but got a string instead.", 'messages'],
    [{ body: { model: 'relay-echo', messages: [{ content: 'x' }] } }, "Missing required parameter: 'messages[0].role'.", 'messages[0].role'],
    [{ body: { model: 'relay-echo', messages, stream: 'yes' } }, "Invalid type for 'stream': expected a boolean, but got a string instead.", 'stream'],
    [{ body: { model: 'relay-echo', messages, stream: true, stream_options: { include_usage: 1 } } }, "Invalid type for 'stream_options.include_usage': expected a boolean, but got an integer instead.", 'stream_options.include_usage'],
  ];
  for (const [opts, message, param] of cases) {
    const r = await once('/v1/chat/completions', { key, ...opts });
    assert.equal(r.res.status, 400, message);
    assert.deepEqual(r.json, openaiError(message, 'invalid_request_error', param, null));
    assert.equal(r.row.outcome, 'relay_error');
    assert.equal(r.row.error_code, 'invalid_request');
  }
});

test('unknown model 404, unknown route 404, wrong method 405, oversize body 413', async () => {
  const model = await once('/v1/chat/completions', { key, body: { model: 'no-such-model', messages } });
  assert.equal(model.res.status, 404);
  assert.deepEqual(
    model.json,
    openaiError("The model 'no-such-model' does not exist or you do not have access to it.", 'invalid_request_error', 'model', 'model_not_found'),
  );
  assert.equal(model.row.model_requested, 'no-such-model');
  assert.equal(model.row.error_code, 'model_not_found');

  const route = await once('/v1/foo', { key, body: {} });
  assert.equal(route.res.status, 404);
  assert.deepEqual(route.json, openaiError('Invalid URL (POST /v1/foo)', 'invalid_request_error', null, null));

  const method = await once('/v1/chat/completions', { method: 'GET', key });
  assert.equal(method.res.status, 405);
  assert.equal(method.res.headers.get('allow'), 'POST');
  assert.deepEqual(
    method.json,
    openaiError('Method GET is not allowed on /v1/chat/completions; use POST.', 'invalid_request_error', null, 'method_not_allowed'),
  );

  const big = await once('/v1/chat/completions', {
    key,
    body: { model: 'relay-echo', messages: [{ role: 'user', content: 'x'.repeat(5000) }] },
  });
  assert.equal(big.res.status, 413);
  assert.deepEqual(
    big.json,
    openaiError("Request too large: the body exceeds the relay's limit of 4096 bytes.", 'invalid_request_error', null, 'request_too_large'),
  );
});

test('upstream 4xx about the request pass through in OpenAI shape', async () => {
  for (const status of [400, 404, 413, 422, 429]) {
    for (const stream of [false, true]) {
      const r = await once('/v1/chat/completions', { key, body: { model: `mock-error-${status}`, messages, stream } });
      assert.equal(r.res.status, status);
      assert.equal(r.res.headers.get('content-type'), 'application/json', 'an error is JSON, never SSE');
      const type = status === 429 ? 'requests' : 'invalid_request_error';
      assert.deepEqual(r.json, openaiError(`mock ${status} error`, type, null, `mock_${status}`));
      if (status === 429) assert.equal(r.res.headers.get('retry-after'), '1');
      assert.equal(r.row.outcome, 'upstream_error');
      assert.equal(r.row.status, status);
      // The provider refused it: nothing was generated and nothing is billed (issue 12, item 7).
      assert.deepEqual([r.row.usage_source, r.row.prompt_tokens, r.row.completion_tokens, r.row.cost_usd], ['none', 0, 0, 0]);
    }
  }
});

test("upstream 401/403 become 502: it is the relay's provider key that is wrong", async () => {
  for (const status of [401, 403]) {
    const r = await once('/v1/chat/completions', { key, body: { model: `mock-error-${status}`, messages } });
    assert.equal(r.res.status, 502);
    assert.deepEqual(
      r.json,
      openaiError(
        "Upstream provider error: the relay's provider credentials were rejected. Contact the relay operator.",
        'server_error',
        null,
        'upstream_error',
      ),
    );
    assert.equal(r.res.headers.get('x-should-retry'), 'false');
    assert.equal(r.row.outcome, 'upstream_error');
  }
});

test('upstream 5xx and unusable answers become 502', async () => {
  for (const model of ['mock-error-500', 'mock-error-503', 'mock-bad-json']) {
    const r = await once('/v1/chat/completions', { key, body: { model, messages } });
    assert.equal(r.res.status, 502, model);
    assert.deepEqual(r.json, openaiError('Upstream provider error.', 'server_error', null, 'upstream_error'));
    assert.equal(r.row.outcome, 'upstream_error');
  }
});

test('upstream that never answers: 504 after UPSTREAM_TIMEOUT_MS', async () => {
  const t0 = Date.now();
  const r = await once('/v1/chat/completions', { key, body: { model: 'mock-hang', messages } });
  assert.equal(r.res.status, 504);
  assert.deepEqual(r.json, openaiError('Upstream timed out.', 'server_error', null, 'timeout'));
  assert.ok(Date.now() - t0 >= 2900);
  assert.equal(r.row.outcome, 'upstream_error');
  assert.equal(r.row.error_code, 'timeout');
});

// Both stream modes: with `include_usage` from the client every byte passes unchanged; without
// it the relay strips the usage chunk it injected (event-aligned).
const PATHS = [
  ['pass-through', { stream_options: { include_usage: true } }],
  ['strip', {}],
];

for (const [path, extra] of PATHS) {
  test(`stream that drops mid-way (${path}): chunks so far, one in-band error, [DONE]; row says truncated`, async () => {
    const r = await once('/v1/chat/completions', { key, body: { model: 'mock-drop', messages, stream: true, ...extra } });
    assert.equal(r.res.status, 200);
    const events = parseSse(r.text);
    assert.equal(events.at(-1), '[DONE]');
    assert.deepEqual(JSON.parse(events.at(-2)), {
      error: { code: 'upstream_stream_error', message: 'Upstream stream ended unexpectedly.', param: null, type: 'server_error' },
    });
    const text = events.slice(0, -2).map((d) => JSON.parse(d).choices[0].delta.content ?? '').join('');
    assert.equal(text, 'Hello from the ');
    assert.ok(r.text.startsWith(relay.provider.requests.at(-1).sent), 'upstream bytes first, unchanged');
    assert.equal(r.row.outcome, 'truncated');
    assert.equal(r.row.usage_source, 'estimated');
    assert.equal(r.row.completion_tokens, 4, '"Hello from the " = 15 chars -> 4 tokens');
    assert.equal(r.row.prompt_tokens, 1, '"hi" = 2 chars -> 1 token');
  });

  test(`client hang-up mid-stream (${path}) cancels the upstream and leaves one client_cancelled row`, async () => {
    const controller = new AbortController();
    const res = await fetch(`${relay.base}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
      body: JSON.stringify({ model: 'mock-infinite', messages, stream: true, ...extra }),
      signal: controller.signal,
    });
    const requestId = res.headers.get('x-request-id');
    const upstream = relay.provider.requests.at(-1);
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes('tick tick tick')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
      if (seen.length > 100000) break;
    }
    controller.abort();
    const row = await relay.row(requestId, { timeoutMs: 10000 });
    assert.equal(row.outcome, 'client_cancelled');
    assert.equal(row.usage_source, 'estimated');
    assert.ok(row.completion_tokens >= 2, `estimated output from what was streamed (${row.completion_tokens})`);
    const deadline = Date.now() + 5000;
    while (!upstream.aborted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.equal(upstream.aborted, true, 'the provider saw the relay hang up too (R8.17)');
    const rows = await relay.db.prepare('SELECT COUNT(*) AS n FROM usage WHERE request_id = ?').bind(requestId).first();
    assert.equal(rows.n, 1);
  });
}

test('in-band upstream error is forwarded unchanged and recorded as upstream_error', async () => {
  const r = await once('/v1/chat/completions', {
    key,
    body: { model: 'mock-error-in-stream', messages, stream: true, stream_options: { include_usage: true } },
  });
  assert.equal(r.res.status, 200);
  assert.equal(r.text, relay.provider.requests.at(-1).sent);
  assert.equal(r.row.outcome, 'upstream_error');
  assert.equal(r.row.error_code, 'server_error');
});

test('stream request answered with plain JSON: 502, not a broken stream', async () => {
  const r = await once('/v1/chat/completions', { key, body: { model: 'mock-json-on-stream', messages, stream: true } });
  assert.equal(r.res.status, 502);
  assert.equal(r.row.outcome, 'upstream_error');
});

test('unreachable upstream: 502 upstream_error', async () => {
  const down = await startRelay({ mock: false, vars: { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' } });
  try {
    const { key: k } = await down.seedKey();
    const r = await call(down, '/v1/chat/completions', { key: k, body: { model: 'mock-ok', messages } });
    assert.equal(r.res.status, 502);
    assert.deepEqual(r.json, openaiError('Upstream provider error.', 'server_error', null, 'upstream_error'));
    const row = await down.row(r.requestId);
    assert.equal(row.outcome, 'upstream_error');
    assert.equal(await down.count(), 1);
  } finally {
    await down.close();
  }
});

test('a stalled stream gets a provisional row, replaced by the final tally when it ends', async () => {
  const controller = new AbortController();
  const res = await fetch(`${relay.base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body: JSON.stringify({ model: 'mock-stall', messages, stream: true }),
    signal: controller.signal,
  });
  const requestId = res.headers.get('x-request-id');
  const reader = res.body.getReader();
  let seen = '';
  while (!seen.includes('from ')) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  // STREAM_IDLE_MS is 800 in tests: the watcher writes what it knows without waiting for an end.
  const provisional = await relay.row(requestId, { settled: false, timeoutMs: 5000 });
  assert.equal(provisional.settled, 0);
  assert.equal(provisional.outcome, 'truncated', 'waiting on the provider, not the client');
  assert.equal(provisional.usage_source, 'estimated');
  assert.equal(provisional.completion_tokens, 3, '"Hello from " = 11 chars -> 3 tokens');
  // The client gives up; the pending upstream read keeps the body alive (workerd does not
  // cancel it), until mock-stall's provider drops the connection 3 s in.
  controller.abort();
  const final = await relay.row(requestId, { timeoutMs: 8000 });
  assert.equal(final.settled, 1);
  assert.equal(final.outcome, 'truncated');
  assert.ok(final.duration_ms >= 2900, `final row written at the real end (${final.duration_ms} ms)`);
  assert.equal(final.completion_tokens, 3);
  const n = await relay.db.prepare('SELECT COUNT(*) AS n FROM usage WHERE request_id = ?').bind(requestId).first();
  assert.equal(n.n, 1, 'the final write replaced the provisional row');
});
