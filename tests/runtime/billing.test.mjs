// What a row bills: requests the relay refused, or a provider rejected, cost nothing (unless
// the provider reported usage for the failure); provider counts past the documented cap are
// clamped; and the usage report and listing answer whatever the table already holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRelay, call, makeKey, sha256, ADMIN_TOKEN } from './harness.mjs';

let relay;
let key;
let limited;

const MAX_TOKENS = 2 ** 32;
const MAX_REPORTED = 2 ** 53 - 1;

before(async () => {
  relay = await startRelay({
    anthropic: true,
    vars: {
      MAX_BODY_BYTES: '4096',
      PRICES: JSON.stringify({
        models: {
          'mock-ok': { input: 1.0, output: 2.0 },
          'mock-error-400': { input: 1.0, output: 2.0 },
          'mock-error-400-usage': { input: 1.0, output: 2.0 },
          'mock-huge-usage': { input: 1.0, output: 2.0 },
        },
      }),
    },
  });
  ({ key } = await relay.seedKey({ team: 'bill', user: 'ann' }));
  // A key allowed one model only, for the policy refusals.
  limited = makeKey('test', 'bill', 'bob');
  const record = { id: `key_${randomBytes(6).toString('hex')}`, team: 'bill', user: 'bob', env: 'test', created_at: new Date().toISOString(), status: 'active', models: ['mock-cached'] };
  await relay.kv.put(`key:${sha256(limited)}`, JSON.stringify(record));
});
after(async () => relay?.close());

const messages = [{ role: 'user', content: 'A prompt long enough that an estimate would be several tokens.' }];

/** The billing columns of a row, as one comparable object. */
function billed(row) {
  const { status, outcome, error_code, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, usage_source, cost_usd } = row;
  return { status, outcome, error_code, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, usage_source, cost_usd };
}

const free = (status, outcome, error_code) => ({
  status, outcome, error_code, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, usage_source: 'none', cost_usd: 0,
});

test('refusals and provider rejections leave rows with no tokens and no cost', async () => {
  const cases = [
    ['no key', '/v1/chat/completions', { body: { model: 'mock-ok', messages } }, free(401, 'relay_error', 'invalid_api_key')],
    ['model outside the key', '/v1/chat/completions', { key: limited, body: { model: 'mock-ok', messages } }, free(403, 'relay_error', 'model_not_allowed')],
    ['model outside the key, Messages', '/v1/messages', { key: limited, headers: { 'anthropic-version': '2023-06-01' }, body: { model: 'mock-ok', max_tokens: 10, messages } }, free(403, 'relay_error', 'model_not_allowed')],
    ['unknown model', '/v1/chat/completions', { key, body: { model: 'no-such-model', messages } }, free(404, 'relay_error', 'model_not_found')],
    ['invalid for the provider (n > 1 on Claude)', '/v1/chat/completions', { key, body: { model: 'claude-sonnet-4-5', n: 2, messages } }, free(400, 'relay_error', 'invalid_request_error')],
    ['invalid JSON', '/v1/chat/completions', { key, raw: '{"model":"mock-ok",' }, free(400, 'relay_error', 'invalid_request_error')],
    ['body over MAX_BODY_BYTES', '/v1/chat/completions', { key, body: { model: 'mock-ok', messages: [{ role: 'user', content: 'x'.repeat(5000) }] } }, free(413, 'relay_error', 'request_too_large')],
    ['provider 400', '/v1/chat/completions', { key, body: { model: 'mock-error-400', messages } }, free(400, 'upstream_error', 'upstream_error')],
  ];
  for (const [what, path, opts, want] of cases) {
    const r = await call(relay, path, opts);
    assert.equal(r.res.status, want.status, `${what}: ${r.text}`);
    const row = await relay.row(r.requestId);
    // error_code is the relay's own code for the status; only the billing must be exact.
    assert.deepEqual({ ...billed(row), error_code: undefined }, { ...want, error_code: undefined }, what);
  }
});

test('a provider that reports usage for a rejection is billed as reported', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-error-400-usage', messages } });
  assert.equal(r.res.status, 400);
  const row = billed(await relay.row(r.requestId));
  assert.deepEqual(
    [row.prompt_tokens, row.completion_tokens, row.usage_source, row.cost_usd],
    [7, 0, 'upstream', 7 / 1e6],
  );
});

test('a served request is still billed (estimate before the provider reports)', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', messages } });
  assert.equal(r.res.status, 200);
  const row = await relay.row(r.requestId);
  assert.equal(row.usage_source, 'upstream');
  assert.ok(row.prompt_tokens > 0 && row.cost_usd > 0);
});

test('provider counts past 2^32 are clamped to 2^32', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-huge-usage', messages } });
  assert.equal(r.res.status, 200);
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.prompt_tokens, row.completion_tokens, row.cached_tokens], [MAX_TOKENS, MAX_TOKENS, MAX_TOKENS]);
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.cost_usd, (MAX_TOKENS * 1 + MAX_TOKENS * 2) / 1e6, 'all prompt tokens cached (rate defaults to input) + output');
});

test('rows holding 2^62 tokens (written before the cap) do not break the report or the listing', async () => {
  // SQL literals, so D1 stores exact 64-bit integers as an old row would hold them.
  for (const id of ['req_huge_1', 'req_huge_2']) {
    await relay.db
      .prepare(`INSERT INTO usage (request_id, team, user, method, route, model_requested, status, outcome, prompt_tokens, completion_tokens, usage_source, cost_usd, started_at, duration_ms, settled)
                VALUES (?1, 'huge', 'h', 'POST', '/v1/chat/completions', 'mock-ok', 200, 'ok', 4611686018427387904, 4611686018427387904, 'upstream', 1.5, '2026-01-02T00:00:00.000Z', 5, 1)`)
      .bind(id)
      .run();
  }
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const usage = await call(relay, '/admin/usage?team=huge', { method: 'GET', headers: admin });
  assert.equal(usage.res.status, 200, usage.text);
  const [total] = usage.json.data;
  assert.deepEqual([total.requests, total.prompt_tokens, total.completion_tokens, total.cost_usd], [2, MAX_REPORTED, MAX_REPORTED, 3]);
  const grouped = await call(relay, '/admin/usage?team=huge&group_by=team,day', { method: 'GET', headers: admin });
  assert.equal(grouped.res.status, 200, grouped.text);
  assert.equal(grouped.json.data[0].prompt_tokens, MAX_REPORTED);
  const csv = await call(relay, '/admin/usage/export?format=csv&team=huge', { method: 'GET', headers: admin });
  assert.equal(csv.res.status, 200, csv.text);
  const listed = await call(relay, '/admin/requests?team=huge', { method: 'GET', headers: admin });
  assert.equal(listed.res.status, 200, listed.text);
  assert.deepEqual(listed.json.data.map((r) => [r.request_id, r.prompt_tokens]), [['req_huge_2', MAX_REPORTED], ['req_huge_1', MAX_REPORTED]]);
});
