// Limits on the request path, on real workerd with the real LimitsObject Durable Objects:
// budget refusals (body, headers, the openai SDK not retrying), 30 concurrent requests against a
// budget that fits five, rpm/tpm/max_parallel, a team budget binding two keys, settlement of the
// actual cost after a stream and after a hang-up, the lease sweep, fail-closed and fail-open,
// unlimited keys never touching an object, unpriced models, and the Messages-shaped refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call, ADMIN_TOKEN } from './harness.mjs';

// $ per million tokens: a request of "hi" with max_tokens 1000 may cost up to ~$0.002.
const PRICES = JSON.stringify({
  models: {
    'mock-ok': { input: 1.0, output: 2.0 },
    'mock-slow': { input: 1.0, output: 2.0 },
    'mock-infinite': { input: 1.0, output: 2.0 },
    'claude-mock': { input: 3.0, output: 15.0 },
  },
});
const hi = [{ role: 'user', content: 'hi' }];
const WORST = 0.002; // 1000 output tokens at $2/M; the prompt adds a few millionths.

let relay;

before(async () => {
  relay = await startRelay({ vars: { PRICES }, anthropic: true });
});
after(async () => relay?.close());

const admin = (r, path, opts = {}) => call(r, path, { key: ADMIN_TOKEN, method: opts.body ? 'POST' : 'GET', ...opts });

let n = 0;
/** A key minted through the admin API (so its limits are in KV as the request path reads them). */
async function mint(r, limits, { team = `lt-${++n}`, user = 'ann' } = {}) {
  const res = await admin(r, '/admin/keys', { body: { team, user, ...(limits ? { limits } : {}) } });
  assert.equal(res.res.status, 201, res.text);
  return res.json;
}

async function keyState(r, id) {
  const v = await admin(r, `/admin/keys/${id}/limits`);
  assert.equal(v.res.status, 200, v.text);
  return v.json.state;
}

/** Polls (bounded) until `check(state)` holds; returns the last state. */
async function waitState(r, id, check, tries = 100) {
  let s;
  for (let i = 0; i < tries; i += 1) {
    s = await keyState(r, id);
    if (check(s)) return s;
    await new Promise((res) => setTimeout(res, 50));
  }
  return s;
}

const chat = (r, key, body, headers) => call(r, '/v1/chat/completions', { key, body: { messages: hi, ...body }, headers });

test('over budget: 429 insufficient_quota/budget_exceeded, x-should-retry false, one limited row, and the SDK does not retry', async () => {
  const k = await mint(relay, { budget_usd: 0.001 });
  relay.provider.reset();
  const r = await chat(relay, k.key, { model: 'mock-ok', max_tokens: 1000 });
  assert.equal(r.res.status, 429, r.text);
  assert.equal(r.res.headers.get('x-should-retry'), 'false');
  assert.equal(r.res.headers.get('retry-after'), null);
  assert.equal(r.json.error.type, 'insufficient_quota');
  assert.equal(r.json.error.code, 'budget_exceeded');
  assert.equal(r.json.error.param, null);
  assert.match(r.json.error.message, new RegExp(`^Budget exceeded for key ${k.id}: \\$0\\.0000 of its \\$0\\.0010 per month is spent`));
  assert.match(r.json.error.message, /resets at \d{4}-\d{2}-01T00:00:00\.000Z\.$/);
  assert.equal(r.res.headers.get('x-relay-budget-remaining-usd'), '0.001000');
  assert.equal(r.res.headers.get('x-relay-budget-scope'), 'key');
  assert.equal(relay.provider.requests.length, 0, 'the provider never saw it');
  const row = await relay.row(r.requestId);
  assert.deepEqual(
    [row.outcome, row.limit_scope, row.limit_name, row.cost_usd, row.status, row.error_code],
    ['limited', 'key', 'budget', 0, 429, 'budget_exceeded'],
  );

  // The SDK's own fetch, counted: with maxRetries 3 it would send a 429 four times.
  let sent = 0;
  const counting = (url, init) => {
    sent += 1;
    return fetch(url, init);
  };
  const client = new OpenAI({ apiKey: k.key, baseURL: relay.base, maxRetries: 3, fetch: counting });
  await assert.rejects(
    client.chat.completions.create({ model: 'mock-ok', messages: hi, max_tokens: 1000 }),
    (e) => e.status === 429 && e.code === 'budget_exceeded' && e.type === 'insufficient_quota',
  );
  assert.equal(sent, 1, 'x-should-retry: false stopped the retries');
});

test('30 concurrent requests against a budget that fits five: exactly five are served', async () => {
  const budget = 5.5 * WORST;
  const k = await mint(relay, { budget_usd: budget });
  const results = await Promise.all(
    Array.from({ length: 30 }, () => chat(relay, k.key, { model: 'mock-slow', max_tokens: 1000 })),
  );
  const statuses = results.map((r) => r.res.status);
  assert.equal(statuses.filter((s) => s === 200).length, 5, statuses.join(','));
  assert.equal(statuses.filter((s) => s === 429).length, 25);
  for (const r of results.filter((x) => x.res.status === 429)) assert.equal(r.json.error.code, 'budget_exceeded');
  const served = results.filter((r) => r.res.status === 200);
  const remaining = served.map((r) => Number(r.res.headers.get('x-relay-budget-remaining-usd')));
  assert.ok(remaining.every((v) => v >= 0 && v < budget), remaining.join(','));

  // Once all have settled, the spend is what the five rows cost, within the budget.
  const state = await waitState(relay, k.id, (s) => s.in_flight === 0 && s.reserved_usd === 0);
  assert.equal(state.in_flight, 0);
  const rows = (await relay.db.prepare('SELECT outcome, cost_usd FROM usage WHERE key_id = ? AND settled = 1').bind(k.id).all()).results;
  assert.equal(rows.filter((x) => x.outcome === 'ok').length, 5);
  assert.equal(rows.filter((x) => x.outcome === 'limited').length, 25);
  const cost = rows.reduce((a, x) => a + x.cost_usd, 0);
  assert.ok(cost > 0);
  assert.ok(Math.abs(state.spent_usd - cost) < 1e-12, `${state.spent_usd} vs ${cost}`);
  assert.ok(state.spent_usd <= budget);
});

test('rpm: 3 → the 4th request in the minute is 429 rate_limit_exceeded with retry-after', async () => {
  const k = await mint(relay, { rpm: 3 });
  const remaining = [];
  for (let i = 0; i < 3; i += 1) {
    const r = await chat(relay, k.key, { model: 'mock-ok' });
    assert.equal(r.res.status, 200, r.text);
    assert.equal(r.res.headers.get('x-ratelimit-limit-requests'), '3');
    remaining.push(r.res.headers.get('x-ratelimit-remaining-requests'));
    assert.match(r.res.headers.get('x-ratelimit-reset-requests'), /^\d+s$/);
  }
  assert.deepEqual(remaining, ['2', '1', '0']);
  const fourth = await chat(relay, k.key, { model: 'mock-ok' });
  assert.equal(fourth.res.status, 429);
  assert.equal(fourth.json.error.code, 'rate_limit_exceeded');
  assert.equal(fourth.json.error.type, 'requests');
  const wait = Number(fourth.res.headers.get('retry-after'));
  assert.ok(wait >= 1 && wait <= 60, String(wait));
  assert.equal(fourth.res.headers.get('retry-after-ms'), String(wait * 1000));
  assert.equal(fourth.res.headers.get('x-should-retry'), null, 'a rate limit may be retried');
  assert.equal(fourth.res.headers.get('x-ratelimit-remaining-requests'), '0');
  assert.match(fourth.json.error.message, new RegExp(`^Rate limit reached for requests of key ${k.id}: 3 per minute\\. Please try again in ${wait}s\\.$`));
  const row = await relay.row(fourth.requestId);
  assert.deepEqual([row.outcome, row.limit_scope, row.limit_name, row.cost_usd], ['limited', 'key', 'rpm', 0]);
});

test('tpm: the tokens of the last minute, estimate first, then what was used', async () => {
  const k = await mint(relay, { tpm: 50 });
  const first = await chat(relay, k.key, { model: 'mock-ok', max_tokens: 40 });
  assert.equal(first.res.status, 200, first.text);
  assert.equal(first.res.headers.get('x-ratelimit-limit-tokens'), '50');
  const second = await chat(relay, k.key, { model: 'mock-ok', max_tokens: 40 });
  assert.equal(second.res.status, 429, second.text);
  assert.equal(second.json.error.type, 'tokens');
  assert.equal(second.json.error.code, 'rate_limit_exceeded');
  assert.ok(Number(second.res.headers.get('retry-after')) >= 1);
  // After settling, the window holds the tokens the first request really used (its row's).
  const row = await relay.row(first.requestId);
  const s = await waitState(relay, k.id, (x) => x.tokens_last_minute === row.prompt_tokens + row.completion_tokens);
  assert.equal(s.tokens_last_minute, row.prompt_tokens + row.completion_tokens);
});

test('max_parallel: 2 with 6 concurrent slow streams → 2 served, 4 refused', async () => {
  const k = await mint(relay, { max_parallel: 2 });
  const results = await Promise.all(
    Array.from({ length: 6 }, () => chat(relay, k.key, { model: 'mock-slow', stream: true })),
  );
  const ok = results.filter((r) => r.res.status === 200);
  const refused = results.filter((r) => r.res.status === 429);
  assert.equal(ok.length, 2, results.map((r) => r.res.status).join(','));
  assert.equal(refused.length, 4);
  for (const r of ok) assert.ok(r.text.includes('[DONE]'));
  for (const r of refused) {
    assert.equal(r.json.error.code, 'rate_limit_exceeded');
    assert.equal(r.res.headers.get('retry-after'), '1');
    assert.match(r.json.error.message, /at most 2 at once/);
  }
  const s = await waitState(relay, k.id, (x) => x.in_flight === 0);
  assert.equal(s.in_flight, 0, 'both streams settled');
  const again = await chat(relay, k.key, { model: 'mock-ok' });
  assert.equal(again.res.status, 200);
});

test('a team budget binds two keys of that team together', async () => {
  const team = 'lt-team';
  const put = await admin(relay, `/admin/limits/teams/${team}`, { method: 'PUT', body: { budget_usd: 1.5 * WORST } });
  assert.equal(put.res.status, 200, put.text);
  const a = await mint(relay, null, { team, user: 'ann' });
  const b = await mint(relay, null, { team, user: 'bob' });
  const [ra, rb] = await Promise.all([
    chat(relay, a.key, { model: 'mock-slow', max_tokens: 1000 }),
    chat(relay, b.key, { model: 'mock-slow', max_tokens: 1000 }),
  ]);
  const statuses = [ra.res.status, rb.res.status].sort();
  assert.deepEqual(statuses, [200, 429]);
  const refused = ra.res.status === 429 ? ra : rb;
  assert.equal(refused.json.error.code, 'budget_exceeded');
  assert.match(refused.json.error.message, new RegExp(`^Budget exceeded for team ${team}:`));
  const served = ra.res.status === 200 ? ra : rb;
  assert.equal(served.res.headers.get('x-relay-budget-scope'), 'team');
  const row = await relay.row(refused.requestId);
  assert.deepEqual([row.limit_scope, row.limit_name], ['team', 'budget']);
  const view = await admin(relay, `/admin/limits/teams/${team}`);
  const servedRow = await relay.row(served.requestId);
  let state = view.json.state;
  for (let i = 0; i < 50 && state.reserved_usd !== 0; i += 1) {
    await new Promise((res) => setTimeout(res, 50));
    state = (await admin(relay, `/admin/limits/teams/${team}`)).json.state;
  }
  assert.ok(Math.abs(state.spent_usd - servedRow.cost_usd) < 1e-12);
});

test('a finished stream and a hang-up mid-stream both settle what they really cost', async () => {
  const k = await mint(relay, { budget_usd: 1 });
  const done = await chat(relay, k.key, { model: 'mock-ok', stream: true, max_tokens: 1000 });
  assert.equal(done.res.status, 200);
  assert.ok(done.res.headers.get('x-relay-budget-remaining-usd'));
  const doneRow = await relay.row(done.requestId);
  let s = await waitState(relay, k.id, (x) => x.reserved_usd === 0 && x.spent_usd > 0);
  assert.ok(Math.abs(s.spent_usd - doneRow.cost_usd) < 1e-12, `${s.spent_usd} vs ${doneRow.cost_usd}`);

  // An endless stream the client leaves after its first bytes.
  const controller = new AbortController();
  const res = await fetch(`${relay.base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body: JSON.stringify({ model: 'mock-infinite', messages: hi, stream: true, max_tokens: 100000 }),
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  const id = res.headers.get('x-request-id');
  const reader = res.body.getReader();
  await reader.read();
  await reader.read();
  controller.abort();
  const during = await keyState(relay, k.id);
  assert.equal(during.in_flight, 1, 'held while it runs');
  assert.ok(during.reserved_usd > 0.19, 'its worst case: 100000 output tokens at $2/M');
  const row = await relay.row(id, { timeoutMs: 15000 });
  assert.equal(row.outcome, 'client_cancelled');
  assert.ok(row.cost_usd > 0, 'the partial stream cost something');
  s = await waitState(relay, k.id, (x) => x.in_flight === 0);
  assert.equal(s.reserved_usd, 0);
  assert.ok(Math.abs(s.spent_usd - (doneRow.cost_usd + row.cost_usd)) < 1e-12, `${s.spent_usd}`);
});

test('the lease sweep frees a reservation whose settlement never came', async () => {
  const k = await mint(relay, { max_parallel: 1, budget_usd: 1 });
  // A reservation as an isolate that then died would have left it: made, never settled.
  const ns = await relay.mf.getDurableObjectNamespace('LIMITS');
  const stub = ns.get(ns.idFromName(`key:${k.id}`));
  const made = await stub.fetch('https://limits.internal/call', {
    method: 'POST',
    body: JSON.stringify({ op: 'reserve', id: 'req_orphan', limits: { max_parallel: 1, budget_usd: 1 }, usd: 0.5, tokens: 0, lease_ms: 1500 }),
  });
  assert.equal(made.status, 200);
  assert.equal((await made.json()).refusal, null);
  const held = await keyState(relay, k.id);
  assert.deepEqual([held.in_flight, held.reserved_usd], [1, 0.5]);
  const blocked = await chat(relay, k.key, { model: 'mock-ok' });
  assert.equal(blocked.res.status, 429, 'the orphan holds the only slot');
  const freed = await waitState(relay, k.id, (x) => x.in_flight === 0, 200);
  assert.deepEqual([freed.in_flight, freed.reserved_usd, freed.spent_usd], [0, 0, 0]);
  const served = await chat(relay, k.key, { model: 'mock-ok' });
  assert.equal(served.res.status, 200, served.text);
});

test('an unpriced model on a budgeted scope is refused clearly; on a rate-only scope it passes', async () => {
  const budgeted = await mint(relay, { budget_usd: 10 });
  const r = await chat(relay, budgeted.key, { model: 'mock-no-usage' });
  assert.equal(r.res.status, 400, r.text);
  assert.equal(r.json.error.code, 'model_not_priced');
  assert.equal(r.json.error.param, 'model');
  assert.equal(r.res.headers.get('x-should-retry'), 'false');
  assert.match(r.json.error.message, new RegExp(`^Model 'mock-no-usage' has no price in the relay's price table, so it cannot be counted against the budget of key ${budgeted.id}\\.`));
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.outcome, row.limit_scope, row.limit_name, row.cost_usd], ['limited', 'key', 'unpriced', 0]);
  const rateOnly = await mint(relay, { rpm: 100 });
  const ok = await chat(relay, rateOnly.key, { model: 'mock-no-usage' });
  assert.equal(ok.res.status, 200);
});

test('on /v1/messages a refusal is Anthropic-shaped', async () => {
  const k = await mint(relay, { budget_usd: 0.0001 });
  const r = await call(relay, '/v1/messages', {
    body: { model: 'claude-mock', max_tokens: 1000, messages: hi },
    headers: { 'x-api-key': k.key, 'anthropic-version': '2023-06-01' },
  });
  assert.equal(r.res.status, 429, r.text);
  assert.equal(r.res.headers.get('x-should-retry'), 'false');
  assert.equal(r.json.type, 'error');
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.match(r.json.error.message, new RegExp(`^Budget exceeded for key ${k.id}:`));
  const rated = await mint(relay, { rpm: 1 });
  const headers = { 'x-api-key': rated.key, 'anthropic-version': '2023-06-01' };
  const first = await call(relay, '/v1/messages', { body: { model: 'claude-mock', max_tokens: 10, messages: hi }, headers });
  assert.equal(first.res.status, 200, first.text);
  assert.equal(first.res.headers.get('x-ratelimit-remaining-requests'), '0');
  const second = await call(relay, '/v1/messages', { body: { model: 'claude-mock', max_tokens: 10, messages: hi }, headers });
  assert.equal(second.res.status, 429);
  assert.equal(second.json.error.type, 'rate_limit_error');
  assert.ok(Number(second.res.headers.get('retry-after')) >= 1);
});

test('unreachable limits objects: budgeted scopes fail closed (503, logged); keys without limits never touch one', async () => {
  const down = await startRelay({ vars: { PRICES }, limits: false });
  try {
    const budgeted = await mint(down, { budget_usd: 5 });
    const r = await chat(down, budgeted.key, { model: 'mock-ok' });
    assert.equal(r.res.status, 503, r.text);
    assert.equal(r.json.error.code, 'limits_unavailable');
    assert.equal(r.json.error.type, 'server_error');
    const row = await down.row(r.requestId);
    assert.deepEqual([row.outcome, row.limit_scope, row.limit_name], ['limited', 'key', 'unavailable']);
    assert.ok(down.logs.some((l) => l.includes(`limits: the object of key:${budgeted.id} could not be reached`) && l.includes('fail closed')), down.logs.join('\n'));

    // A rate-only scope is not a budget: it is admitted without its check, and the log says so.
    const rated = await mint(down, { rpm: 1 });
    const rr = await chat(down, rated.key, { model: 'mock-ok' });
    assert.equal(rr.res.status, 200, rr.text);
    assert.ok(down.logs.some((l) => l.includes(rr.requestId) && l.includes('admitted without')));

    // No limits anywhere: no object is asked, so nothing fails and nothing is logged.
    const plain = await mint(down, null);
    const p = await chat(down, plain.key, { model: 'mock-ok' });
    assert.equal(p.res.status, 200, p.text);
    assert.equal(p.res.headers.get('x-ratelimit-limit-requests'), null);
    await down.row(p.requestId);
    assert.ok(!down.logs.some((l) => l.includes(p.requestId)), 'no limits line for it');
  } finally {
    await down.close();
  }
});

test('LIMITS_FAIL_OPEN=true admits a budgeted request when its object is unreachable, and logs it', async () => {
  const open = await startRelay({ vars: { PRICES, LIMITS_FAIL_OPEN: 'true' }, limits: false });
  try {
    const k = await mint(open, { budget_usd: 5 });
    const r = await chat(open, k.key, { model: 'mock-ok' });
    assert.equal(r.res.status, 200, r.text);
    assert.ok(open.logs.some((l) => l.includes(r.requestId) && l.includes('admitted without')), open.logs.join('\n'));
  } finally {
    await open.close();
  }
});

test('on /v1/responses the refusal is the same, and its row counts no tokens', async () => {
  const k = await mint(relay, { budget_usd: 0.0001 });
  const r = await call(relay, '/v1/responses', { key: k.key, body: { model: 'mock-ok', input: 'hello there', max_output_tokens: 1000 } });
  assert.equal(r.res.status, 429, r.text);
  assert.equal(r.json.error.code, 'budget_exceeded');
  assert.equal(r.res.headers.get('x-should-retry'), 'false');
  const row = await relay.row(r.requestId);
  assert.deepEqual(
    [row.outcome, row.limit_name, row.prompt_tokens, row.completion_tokens, row.cost_usd],
    ['limited', 'budget', 0, 0, 0],
  );
});
