// Failed authentication is throttled per client address with wrangler.toml's AUTH_LIMIT
// (README: "Errors", "Usage rows"): past the limit an address gets 429 + retry-after, admin
// routes before the token is compared, and the throttled requests are tallied in `refused`
// rather than one usage row each. Addresses are set with cf-connecting-ip, as Cloudflare does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, ADMIN_TOKEN, wranglerRatelimits } from './harness.mjs';

let relay;
let key;
const LIMITS = wranglerRatelimits();
const LIMIT = LIMITS.AUTH_LIMIT.simple.limit;
before(async () => {
  relay = await startRelay({ mock: false, assets: false, ratelimits: LIMITS });
  ({ key } = await relay.seedKey({ team: 'thr', user: 'ann' }));
});
after(async () => relay?.close());

const from = (ip, extra = {}) => ({ 'cf-connecting-ip': ip, ...extra });

/**
 * Sends `send()` until the first 429, at most `max` times; returns the statuses. The limiter
 * counts per minute, so a minute boundary during the run may allow up to twice the limit.
 */
async function untilThrottled(send, max) {
  const statuses = [];
  for (let i = 0; i < max; i++) {
    const r = await send();
    statuses.push(r.res.status);
    if (r.res.status === 429) return { statuses, last: r };
  }
  return { statuses, last: null };
}

function assertThrottled(r) {
  assert.equal(r.res.status, 429);
  const wait = Number(r.res.headers.get('retry-after'));
  assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `retry-after ${wait}`);
  assert.deepEqual(r.json, {
    error: {
      message: `Too many failed authentication attempts from your address. Try again in ${wait} seconds.`,
      type: 'requests',
      param: null,
      code: 'too_many_failed_attempts',
    },
  });
}

test('wrong admin tokens: after the limit, 429 before the token is checked, for that address only', async () => {
  const wrong = () => call(relay, '/admin/keys', { method: 'GET', key: `${ADMIN_TOKEN}-wrong`, headers: from('198.51.100.1') });
  const { statuses, last } = await untilThrottled(wrong, 2 * LIMIT + 1);
  assert.ok(last, `never throttled: ${statuses}`);
  assert.ok(statuses.length > LIMIT, `throttled after ${statuses.length - 1} failures`);
  assert.ok(statuses.slice(0, -1).every((s) => s === 401), String(statuses));
  assertThrottled(last);
  // The right token from the blocked address is refused too: guesses there learn nothing.
  const right = await call(relay, '/admin/keys', { method: 'GET', key: ADMIN_TOKEN, headers: from('198.51.100.1') });
  assertThrottled(right);
  // Another address, and the relay API from the blocked one, are unaffected.
  assert.equal((await call(relay, '/admin/keys', { method: 'GET', key: ADMIN_TOKEN, headers: from('198.51.100.2') })).res.status, 200);
  assert.equal((await call(relay, '/v1/models', { method: 'GET', key, headers: from('198.51.100.1') })).res.status, 200);
});

test('a flood of bad keys from one address: bounded usage rows, the rest counted in refused', async () => {
  const N = 4 * LIMIT;
  const statuses = [];
  for (let i = 0; i < N; i++) {
    // GET, so no request body is left unread: workerd closes a keep-alive connection whose
    // POST body it had not received when an instant 429 went out, which fails the next fetch.
    const r = await call(relay, '/v1/models', { method: 'GET', key: `lc_test_thr_ann_${'x'.repeat(32)}${i}`, headers: from('198.51.100.3') });
    statuses.push(r.res.status);
    if (r.res.status === 429) assertThrottled(r);
  }
  const rejected = statuses.filter((s) => s === 401).length;
  const throttled = statuses.filter((s) => s === 429).length;
  assert.equal(rejected + throttled, N, String(statuses));
  assert.ok(rejected >= LIMIT && rejected <= 2 * LIMIT, `401s: ${rejected}`);
  // A valid key from the flooding address is still served: keys are checked first.
  const ok = await call(relay, '/v1/chat/completions', { key, headers: from('198.51.100.3'), body: { model: 'relay-echo', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(ok.res.status, 200, ok.text);

  // Bounded waits: rows come from wait_until, the tally from its next flush (a few seconds).
  const deadline = Date.now() + 20_000;
  let rows = -1;
  let tallied = -1;
  while (Date.now() < deadline) {
    rows = (await relay.db.prepare("SELECT COUNT(*) AS n FROM usage WHERE error_code = 'invalid_api_key'").first()).n;
    tallied = (await relay.db.prepare("SELECT COALESCE(SUM(count), 0) AS n FROM refused WHERE reason = 'invalid_api_key'").first()).n;
    if (rows === rejected && tallied === throttled) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(rows, rejected, 'one usage row per 401, none per 429');
  assert.equal(tallied, throttled, 'every 429 is counted in refused');
  assert.equal(rows + tallied, N);
  const usage = await call(relay, '/admin/usage', { method: 'GET', key: ADMIN_TOKEN, headers: from('198.51.100.2') });
  assert.equal(usage.res.status, 200, usage.text);
  assert.equal(usage.json.refused.invalid_api_key, throttled);
  assert.ok(usage.json.refused.invalid_admin_token >= 2, JSON.stringify(usage.json.refused));
});
