// Routing by configuration: OpenAI-compatible providers declared in PROVIDERS (with their
// quirks), ROUTES with ordered fallback targets, retries with backoff before the first byte,
// per-provider time-to-first-byte timeouts, and the row's record of who served and how often.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call } from './harness.mjs';
import { startMockProvider, parseSse } from '../mock/provider.mjs';

let relay;
let compat;
let key;

before(async () => {
  compat = await startMockProvider({ apiKey: 'sk-compat' });
  const providers = {
    compat: { kind: 'openai-compatible', base_url: compat.url, key_secret: 'COMPAT_KEY', stream_usage: false, models: ['llama-*'], ttfb_timeout_ms: 500, idle_timeout_ms: 700 },
    azure: { kind: 'openai', base_url: `${compat.url}/deployments/gpt4o`, key_secret: 'AZURE_KEY', key_header: 'api-key', api_version: '2024-10-21' },
    unkeyed: { kind: 'openai-compatible', base_url: compat.url, key_secret: 'NOT_SET' },
  };
  const routes = {
    'relay-fast': ['unkeyed:mock-ok', 'compat:mock-error-503', 'openai:mock-ok'],
    'relay-limited': ['openai:mock-error-429', 'compat:mock-ok'],
    'relay-bad': ['openai:mock-error-400', 'compat:mock-ok'],
    'relay-slow': ['compat:mock-hang', 'openai:mock-ok'],
    'relay-keyfail': ['openai:mock-error-401', 'compat:mock-ok'],
    'relay-azure': ['azure:gpt-4o'],
    'relay-stall': ['compat:mock-stall', 'openai:mock-ok'],
  };
  relay = await startRelay({
    vars: { PROVIDERS: JSON.stringify(providers), ROUTES: JSON.stringify(routes), COMPAT_KEY: 'sk-compat', AZURE_KEY: 'az-key' },
  });
  ({ key } = await relay.seedKey({ team: 'route', user: 'ann' }));
});
after(async () => {
  await relay?.close();
  await compat?.close();
});

const messages = [{ role: 'user', content: 'hi' }];

test('an OpenAI-compatible provider by configuration alone, without stream_options', async () => {
  compat.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'llama-3.3-70b', messages, stream: true } });
  assert.equal(r.res.status, 200);
  const [up] = compat.requests;
  assert.equal(up.headers.authorization, 'Bearer sk-compat');
  assert.equal(up.body.stream_options, undefined, 'stream_usage: false means nothing injected');
  assert.equal(parseSse(r.text).at(-1), '[DONE]');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.model_upstream, row.attempts, row.usage_source], ['compat', 'llama-3.3-70b', 1, 'estimated']);
});

test('a route falls back: unkeyed provider skipped, 503 retried once, then the next target serves', async () => {
  compat.reset();
  relay.provider.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-fast', messages } });
  assert.equal(r.res.status, 200);
  assert.equal(compat.requests.length, 2, 'two attempts at the failing target');
  assert.equal(relay.provider.requests[0].body.model, 'mock-ok', 'the route names the upstream model');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.model_requested, row.provider, row.model_upstream, row.attempts, row.outcome], ['relay-fast', 'openai', 'mock-ok', 3, 'ok']);
});

test('429 honours retry-after before retrying, then falls back', async () => {
  const t0 = Date.now();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-limited', messages } });
  assert.equal(r.res.status, 200);
  assert.ok(Date.now() - t0 >= 950, 'waited out retry-after: 1');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.attempts], ['compat', 3]);
});

test('a 400 is the request at fault: no retry, no fallback', async () => {
  compat.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-bad', messages } });
  assert.equal(r.res.status, 400);
  assert.equal(r.json.error.code, 'mock_400');
  assert.equal(compat.requests.length, 0);
  assert.equal((await relay.row(r.requestId)).attempts, 1);
});

test('a provider that rejects the relay key is skipped for the next target', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-keyfail', messages } });
  assert.equal(r.res.status, 200);
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.attempts], ['compat', 2]);
});

test('per-provider time-to-first-byte timeout moves on to the next target', async () => {
  const t0 = Date.now();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-slow', messages } });
  assert.equal(r.res.status, 200);
  assert.ok(Date.now() - t0 >= 900, 'two 500 ms timeouts first');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.attempts], ['openai', 3]);
});

test("Azure OpenAI's scheme: api-key header and api-version on the URL", async () => {
  compat.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-azure', messages } });
  const [up] = compat.requests;
  assert.equal(up.path, '/v1/deployments/gpt4o/chat/completions?api-version=2024-10-21');
  assert.equal(up.headers['api-key'], 'az-key');
  assert.equal(up.headers.authorization, undefined);
  // The mock only knows Bearer auth, so it refuses: the relay's provider key is "wrong" -> 502.
  assert.equal(r.res.status, 502);
});

test('/v1/models lists route names that can be served', async () => {
  const r = await call(relay, '/v1/models', { method: 'GET', key });
  const ids = r.json.data.map((m) => m.id);
  for (const name of ['relay-echo', 'relay-fast', 'relay-limited', 'relay-azure']) assert.ok(ids.includes(name), name);
});

test('a provider silent mid-stream past UPSTREAM_IDLE_TIMEOUT_MS: in-band timeout error, [DONE], upstream cancelled', async () => {
  const quick = await startRelay({ vars: { UPSTREAM_IDLE_TIMEOUT_MS: '1000', STREAM_IDLE_MS: '400' } });
  try {
    const { key: k } = await quick.seedKey();
    const t0 = Date.now();
    const r = await call(quick, '/v1/chat/completions', { key: k, body: { model: 'mock-stall', messages, stream: true } });
    const took = Date.now() - t0;
    assert.equal(r.res.status, 200);
    const events = parseSse(r.text);
    assert.equal(events.at(-1), '[DONE]');
    assert.deepEqual(JSON.parse(events.at(-2)), {
      error: { code: 'timeout', message: 'Upstream timed out.', param: null, type: 'server_error' },
    });
    assert.equal(events.slice(0, -2).map((d) => JSON.parse(d).choices[0].delta.content ?? '').join(''), 'Hello from ');
    assert.ok(took >= 900 && took < 2900, `gave up after the idle timeout, before the provider did (${took} ms)`);
    const row = await quick.row(r.requestId);
    assert.equal(row.outcome, 'truncated');
    assert.equal(row.usage_source, 'estimated');
    const deadline = Date.now() + 3000;
    const upstream = quick.provider.requests.at(-1);
    while (!upstream.aborted && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
    assert.equal(upstream.aborted, true, 'the stalled provider request was cancelled');
  } finally {
    await quick.close();
  }
});

test('no retry after the first byte: a target that stalls mid-stream ends in-band, no fallback', async () => {
  compat.reset();
  relay.provider.reset();
  const t0 = Date.now();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-stall', messages, stream: true } });
  const took = Date.now() - t0;
  assert.equal(r.res.status, 200);
  const events = parseSse(r.text);
  assert.equal(events.at(-1), '[DONE]');
  assert.equal(JSON.parse(events.at(-2)).error.code, 'timeout');
  assert.ok(took >= 600 && took < 2500, `the provider's own idle_timeout_ms (700) applied (${took} ms)`);
  assert.equal(compat.requests.length, 1);
  assert.equal(relay.provider.requests.length, 0, 'bytes had gone to the client: never fall back');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.provider, row.attempts, row.outcome], ['compat', 1, 'truncated']);
});

test("a provider's idle_timeout_ms shorter than STREAM_IDLE_MS is honoured, not the larger of the two", async () => {
  const stalling = await startMockProvider({ apiKey: 'sk-compat', stallMs: 8000 });
  const providers = {
    quick: { kind: 'openai-compatible', base_url: stalling.url, key_secret: 'COMPAT_KEY', stream_usage: false, models: ['mock-stall'], idle_timeout_ms: 300 },
  };
  const own = await startRelay({ mock: false, vars: { PROVIDERS: JSON.stringify(providers), COMPAT_KEY: 'sk-compat', STREAM_IDLE_MS: '4000' } });
  try {
    const { key: k } = await own.seedKey();
    const t0 = Date.now();
    const r = await call(own, '/v1/chat/completions', { key: k, body: { model: 'mock-stall', messages, stream: true } });
    const took = Date.now() - t0;
    const events = parseSse(r.text);
    assert.equal(JSON.parse(events.at(-2)).error.code, 'timeout');
    assert.ok(took < 4000, `ended by the provider's 300 ms, not STREAM_IDLE_MS's 4000 ms (${took} ms)`);
    const row = await own.row(r.requestId);
    assert.deepEqual([row.provider, row.outcome], ['quick', 'truncated']);
  } finally {
    await own.close();
    await stalling.close();
  }
});
