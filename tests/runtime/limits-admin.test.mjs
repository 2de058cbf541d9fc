// The limits admin API (CONTRACT.md) through the real worker, with real Durable Objects: key
// limits on create and change (merge, null clears, audit), user and team scopes (PUT/GET/DELETE,
// list, audit), what D1 and KV hold, the scope views with live state, and every rejection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, sha256, ADMIN_TOKEN } from './harness.mjs';

let relay;

before(async () => {
  relay = await startRelay();
});
after(async () => relay?.close());

const admin = (path, opts = {}) => call(relay, path, { key: ADMIN_TOKEN, method: opts.body ? 'POST' : 'GET', ...opts });
const zeroState = (period = 'month') => ({
  period,
  spent_usd: 0, reserved_usd: 0, in_flight: 0, requests_last_minute: 0, tokens_last_minute: 0,
});

function stateShape(state) {
  const { period_start, resets_at, remaining_usd, ...rest } = state;
  return rest;
}

async function audits(target) {
  const r = await admin(`/admin/audit?key=${encodeURIComponent(target)}`);
  assert.equal(r.res.status, 200, r.text);
  return r.json.data;
}

test('a key carries limits: set on create, merged on change, null clears, audited, in KV', async () => {
  const created = await admin('/admin/keys', { body: { team: 'lim-a', user: 'ann', limits: { budget_usd: 25, rpm: 60 } } });
  assert.equal(created.res.status, 201, created.text);
  assert.deepEqual(created.json.limits, { budget_usd: 25, budget_period: 'month', rpm: 60 });
  const kv = await relay.kv.get(`key:${sha256(created.json.key)}`, 'json');
  assert.deepEqual(kv.limits, { budget_usd: 25, budget_period: 'month', rpm: 60 });

  const id = created.json.id;
  const patched = await admin(`/admin/keys/${id}`, { method: 'PATCH', body: { limits: { rpm: null, max_parallel: 4, budget_period: 'week' } } });
  assert.equal(patched.res.status, 200, patched.text);
  assert.deepEqual(patched.json.limits, { budget_usd: 25, budget_period: 'week', max_parallel: 4 });
  const shown = await admin(`/admin/keys/${id}`);
  assert.deepEqual(shown.json.limits, patched.json.limits);
  const [update, create] = await audits(id);
  assert.equal(create.action, 'create');
  assert.deepEqual(create.changes.limits, { budget_usd: 25, budget_period: 'month', rpm: 60 });
  assert.equal(update.action, 'update');
  assert.deepEqual(update.changes.limits, {
    from: { budget_usd: 25, budget_period: 'month', rpm: 60 },
    to: { budget_usd: 25, budget_period: 'week', max_parallel: 4 },
  });

  const view = await admin(`/admin/keys/${id}/limits`);
  assert.equal(view.res.status, 200, view.text);
  assert.equal(view.json.scope, 'key');
  assert.deepEqual([view.json.key_id, view.json.team, view.json.user], [id, 'lim-a', 'ann']);
  assert.deepEqual(view.json.limits, patched.json.limits);
  assert.deepEqual(stateShape(view.json.state), zeroState('week'));
  assert.equal(view.json.state.remaining_usd, 25);
  const monday = new Date(view.json.state.period_start);
  assert.equal(monday.getUTCDay(), 1);
  assert.equal(Date.parse(view.json.state.resets_at) - monday.getTime(), 7 * 86400e3);

  const cleared = await admin(`/admin/keys/${id}`, { method: 'PATCH', body: { limits: null } });
  assert.deepEqual(cleared.json.limits, {});
  const kvAfter = await relay.kv.get(`key:${sha256(created.json.key)}`, 'json');
  assert.equal(kvAfter.limits, undefined, 'a key without limits carries none in KV');
  const plain = await admin('/admin/keys', { body: { team: 'lim-a', user: 'bob' } });
  assert.deepEqual(plain.json.limits, {});
});

test('key limits are validated, naming the field', async () => {
  const cases = [
    [{ limits: { budget_usd: 0 } }, 'limits.budget_usd'],
    [{ limits: { budget_usd: 'ten' } }, 'limits.budget_usd'],
    [{ limits: { budget_period: 'year' } }, 'limits.budget_period'],
    [{ limits: { rpm: 0 } }, 'limits.rpm'],
    [{ limits: { tpm: 2.5 } }, 'limits.tpm'],
    [{ limits: { max_parallel: -1 } }, 'limits.max_parallel'],
    [{ limits: { burst: 3 } }, 'limits.burst'],
    [{ limits: [1] }, 'limits'],
  ];
  for (const [extra, param] of cases) {
    const r = await admin('/admin/keys', { body: { team: 'lim-v', user: 'u', ...extra } });
    assert.equal(r.res.status, 400, JSON.stringify(extra));
    assert.equal(r.json.error.param, param, JSON.stringify(extra));
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  const k = await admin('/admin/keys', { body: { team: 'lim-v', user: 'u' } });
  const bad = await admin(`/admin/keys/${k.json.id}`, { method: 'PATCH', body: { limits: { rpm: 'fast' } } });
  assert.equal(bad.res.status, 400);
  assert.equal(bad.json.error.param, 'limits.rpm');
  const missing = await admin('/admin/keys/key_nope/limits');
  assert.equal(missing.res.status, 404);
});

test('team and user scopes: PUT replaces, GET shows, DELETE clears, list, D1, KV and audit', async () => {
  const none = await admin('/admin/limits/teams/lim-t');
  assert.equal(none.res.status, 200, none.text);
  assert.deepEqual({ ...none.json, state: stateShape(none.json.state) }, { scope: 'team', team: 'lim-t', limits: {}, state: zeroState() });
  assert.equal(none.json.state.remaining_usd, null);

  const put = await admin('/admin/limits/teams/lim-t', { method: 'PUT', body: { budget_usd: 100, budget_period: 'day', tpm: 5000 } });
  assert.equal(put.res.status, 200, put.text);
  assert.deepEqual(put.json.limits, { budget_usd: 100, budget_period: 'day', tpm: 5000 });
  assert.equal(put.json.state.remaining_usd, 100);
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(put.json.state.period_start, `${today}T00:00:00.000Z`);

  const user = await admin('/admin/limits/teams/lim-t/users/ann', { method: 'PUT', body: { rpm: 5 } });
  assert.equal(user.res.status, 200, user.text);
  assert.deepEqual([user.json.scope, user.json.team, user.json.user], ['user', 'lim-t', 'ann']);
  // PUT replaces: fields it does not name are gone.
  const replaced = await admin('/admin/limits/teams/lim-t', { method: 'PUT', body: { rpm: 100 } });
  assert.deepEqual(replaced.json.limits, { rpm: 100 });
  await admin('/admin/limits/teams/lim-a', { method: 'PUT', body: { max_parallel: 9 } });

  const list = await admin('/admin/limits');
  assert.equal(list.res.status, 200);
  const mine = list.json.data.filter((d) => d.team.startsWith('lim-'));
  assert.deepEqual(mine, [
    { scope: 'team', team: 'lim-a', limits: { max_parallel: 9 } },
    { scope: 'team', team: 'lim-t', limits: { rpm: 100 } },
    { scope: 'user', team: 'lim-t', user: 'ann', limits: { rpm: 5 } },
  ]);
  assert.deepEqual(await relay.kv.get('limits:team:lim-t', 'json'), { rpm: 100 });
  assert.deepEqual(await relay.kv.get('limits:user:lim-t/ann', 'json'), { rpm: 5 });
  const d1 = await relay.db.prepare("SELECT kind, team, user, limits FROM limits WHERE scope = 'user:lim-t/ann'").first();
  assert.deepEqual(d1, { kind: 'user', team: 'lim-t', user: 'ann', limits: '{"rpm":5}' });

  const del = await admin('/admin/limits/teams/lim-t/users/ann', { method: 'DELETE' });
  assert.equal(del.res.status, 200);
  assert.deepEqual(del.json.limits, {});
  assert.equal(await relay.kv.get('limits:user:lim-t/ann'), null);
  const after = await admin('/admin/limits');
  assert.ok(!after.json.data.some((d) => d.user === 'ann' && d.team === 'lim-t'));

  const teamAudit = await audits('team:lim-t');
  assert.deepEqual(teamAudit.map((a) => a.action), ['limits.set', 'limits.set']);
  assert.deepEqual(teamAudit[0].changes, {
    target: 'team:lim-t',
    limits: { from: { budget_usd: 100, budget_period: 'day', tpm: 5000 }, to: { rpm: 100 } },
  });
  const userAudit = await audits('user:lim-t/ann');
  assert.deepEqual(userAudit.map((a) => a.action), ['limits.delete', 'limits.set']);
  assert.deepEqual(userAudit[0].changes.limits, { from: { rpm: 5 }, to: {} });
});

test('scope requests are validated: bodies, slugs, methods', async () => {
  const cases = [
    ['/admin/limits/teams/lim-x', { budget_usd: -1 }, 'budget_usd'],
    ['/admin/limits/teams/lim-x', { rpm: 1, extra: true }, 'extra'],
    ['/admin/limits/teams/Bad_Team', { rpm: 1 }, 'team'],
    ['/admin/limits/teams/lim-x/users/B%20B', { rpm: 1 }, 'user'],
  ];
  for (const [path, body, param] of cases) {
    const r = await admin(path, { method: 'PUT', body });
    assert.equal(r.res.status, 400, `${path} ${r.text}`);
    assert.equal(r.json.error.param, param, path);
  }
  const notJson = await admin('/admin/limits/teams/lim-x', { method: 'PUT', raw: 'nope', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.res.status, 400);
  const post = await admin('/admin/limits/teams/lim-x', { method: 'POST', body: { rpm: 1 } });
  assert.equal(post.res.status, 405);
  assert.equal(post.res.headers.get('allow'), 'GET, PUT, DELETE');
  const anon = await call(relay, '/admin/limits', { method: 'GET' });
  assert.equal(anon.res.status, 401);
  // Nothing was written by the refusals.
  assert.equal(await relay.kv.get('limits:team:lim-x'), null);
});
