// Usage metering a team can bill on: per-provider stream-usage capability, clients that leave
// before the headers, cost from the price table, and D1 failures that must not lose a row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call } from './harness.mjs';
import { parseSse, REPLY_TEXT } from '../mock/provider.mjs';

let relay;
let key;

before(async () => {
  relay = await startRelay();
  ({ key } = await relay.seedKey());
});
after(async () => relay?.close());

const messages = [{ role: 'user', content: 'Hello there, relay!' }];

test('a provider that refuses stream_options: injecting it is what breaks (422 passes through)', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-strict', messages, stream: true } });
  assert.equal(r.res.status, 422);
  assert.equal(r.json.error.param, 'stream_options');
});

test('OPENAI_STREAM_USAGE=false: no stream_options injected, usage estimated from the text', async () => {
  const strict = await startRelay({ vars: { OPENAI_STREAM_USAGE: 'false' } });
  try {
    const { key: k } = await strict.seedKey();
    const body = { model: 'mock-strict', messages, stream: true };
    const r = await call(strict, '/v1/chat/completions', { key: k, body });
    assert.equal(r.res.status, 200);
    const [up] = strict.provider.requests;
    assert.equal(up.rawBody, JSON.stringify(body), 'forwarded untouched');
    assert.equal(r.text, up.sent, 'relayed byte for byte');
    const text = parseSse(r.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d).choices[0].delta.content ?? '').join('');
    assert.equal(text, REPLY_TEXT);
    const row = await strict.row(r.requestId);
    assert.equal(row.outcome, 'ok');
    assert.equal(row.usage_source, 'estimated');
    assert.equal(row.prompt_tokens, 5, '"Hello there, relay!" = 19 chars -> 5');
    assert.equal(row.completion_tokens, 8, `"${REPLY_TEXT}" = 29 chars -> 8`);
  } finally {
    await strict.close();
  }
});

test('a client that leaves before the headers still leaves one row', async () => {
  for (const stream of [true, false]) {
    relay.provider.reset();
    const before = await relay.count();
    const controller = new AbortController();
    const pending = fetch(`${relay.base}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-slow', messages, stream }),
      signal: controller.signal,
    }).catch((e) => e.name);
    // mock-slow holds its headers for 1.5 s; leave well before that.
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    assert.equal(await pending, 'AbortError');
    const deadline = Date.now() + 10000;
    let rows = [];
    while (Date.now() < deadline) {
      rows = (await relay.db.prepare('SELECT * FROM usage WHERE model_requested = ? AND settled = 1 ORDER BY started_at DESC').bind('mock-slow').all()).results;
      if ((await relay.count()) === before + 1 && rows.length && rows[0].stream === Number(stream)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await relay.count(), before + 1, 'exactly one row');
    const row = rows[0];
    assert.equal(row.stream, Number(stream));
    if (stream) {
      // Nobody read the stream the relay started: recorded as the client's cancellation.
      assert.equal(row.outcome, 'client_cancelled');
    } else {
      // The provider answered in full and billed for it, so the row keeps its exact usage.
      assert.equal(row.outcome, 'ok');
      assert.equal(row.usage_source, 'upstream');
      assert.equal(row.completion_tokens, 5);
    }
  }
});

test('cost is computed at write time from the price table; no price means NULL and a warning', async () => {
  const priced = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-cached', messages } });
  const row = await relay.row(priced.requestId);
  // mock-cached: 15 prompt (4 cached) + 5 output at 1.0 / 0.5 / 2.0 USD per 1M tokens.
  assert.equal(row.prompt_tokens, 15);
  assert.equal(row.cached_tokens, 4);
  assert.ok(Math.abs(row.cost_usd - (11 * 1.0 + 4 * 0.5 + 5 * 2.0) / 1e6) < 1e-15, `cost ${row.cost_usd}`);

  const streamed = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', messages, stream: true } });
  const srow = await relay.row(streamed.requestId);
  assert.ok(Math.abs(srow.cost_usd - (15 * 1.0 + 5 * 2.0) / 1e6) < 1e-15, `stream cost ${srow.cost_usd}`);

  const echo = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-echo', messages } });
  assert.equal((await relay.row(echo.requestId)).cost_usd, 0, 'relay-echo is free');

  const unpriced = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-long', messages } });
  const urow = await relay.row(unpriced.requestId);
  assert.equal(urow.completion_tokens, 100);
  assert.equal(urow.cost_usd, null, 'never a guessed number');
  assert.ok(
    relay.logs.some((l) => l.includes(`no price for model "mock-long"; cost_usd left NULL for request ${unpriced.requestId}`)),
    'a warning names the model and request',
  );

  const denied = await call(relay, '/v1/chat/completions', { body: { model: 'mock-long', messages } });
  assert.equal((await relay.row(denied.requestId)).cost_usd, 0, 'a request that used no tokens cost nothing');
});

test('a PRICES override that is not valid JSON is a clear configuration error', async () => {
  const bad = await startRelay({ mock: false, vars: { PRICES: '{"models": {"x": {"input": 1}}}' } });
  try {
    const r = await call(bad, '/health', { method: 'GET' });
    assert.equal(r.res.status, 500);
    assert.deepEqual(r.json, {
      error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: 'internal_error' },
    });
    assert.ok(bad.logs.some((l) => l.includes('PRICES: price of \\"x\\": missing field `output`') || l.includes('PRICES: price of "x": missing field `output`')));
  } finally {
    await bad.close();
  }
});

test('when D1 refuses the write: retried, then logged whole for replay and counted', async () => {
  const broken = await startRelay({ mock: false });
  try {
    const { key: k } = await broken.seedKey({ team: 'ops', user: 'eve' });
    await broken.db.prepare('DROP TABLE usage').run();
    const r = await call(broken, '/v1/chat/completions', { key: k, body: { model: 'relay-echo', messages } });
    assert.equal(r.res.status, 200, 'the client is never held up by metering');
    const deadline = Date.now() + 10000;
    let line;
    while (!line && Date.now() < deadline) {
      line = broken.logs.find((l) => l.includes('usage_write_failed') && l.includes(r.requestId));
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(line, 'one structured line per lost write');
    const record = JSON.parse(line.slice(line.indexOf('record=') + 'record='.length));
    assert.equal(record.request_id, r.requestId);
    assert.deepEqual([record.team, record.user, record.model_requested, record.status], ['ops', 'eve', 'relay-echo', 200]);
    assert.equal(record.tokens.completion, 8);
    assert.equal(record.cost_usd, 0);
    assert.match(line, /failures_total=1 /);
    assert.equal(broken.logs.filter((l) => l.includes('usage write attempt')).length, 3, 'three attempts before giving up');
    const health = await call(broken, '/health', { method: 'GET' });
    assert.equal(health.json.usage_write_failures, 1);
  } finally {
    await broken.close();
  }
});
