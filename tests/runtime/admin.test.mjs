// The admin API through the real worker: key lifecycle (create, list, show, change, rotate,
// revoke), what KV and D1 hold, per-key model policy, usage reports and CSV export checked
// against rows the test wrote, the audit log, and every rejection with its exact body.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, sha256, ADMIN_TOKEN } from './harness.mjs';

let relay;

before(async () => {
  relay = await startRelay();
});
after(async () => relay?.close());

const admin = (path, opts = {}) => call(relay, path, { key: ADMIN_TOKEN, method: opts.body ? 'POST' : 'GET', ...opts });
const hi = [{ role: 'user', content: 'hi' }];
const err = (message, param = null, code = null, type = 'invalid_request_error') => ({ error: { message, type, param, code } });

async function mint(body) {
  const r = await admin('/admin/keys', { body });
  assert.equal(r.res.status, 201, r.text);
  return r.json;
}

test('an admin mints a key: shown once, stored only as its SHA-256, and it works', async () => {
  const r = await admin('/admin/keys', { body: { team: 'platform', user: 'bob', env: 'prod', name: 'Bob laptop', metadata: { cost_center: '42' } } });
  assert.equal(r.res.status, 201);
  const { key, ...rec } = r.json;
  assert.match(key, /^lc_prod_platform_bob_[0-9A-Za-z]{32}$/);
  assert.match(rec.id, /^key_[0-9A-Za-z]{16}$/);
  assert.ok(Math.abs(Date.parse(rec.created_at) - Date.now()) < 60000);
  assert.deepEqual(rec, {
    id: rec.id, team: 'platform', user: 'bob', env: 'prod', name: 'Bob laptop', status: 'active',
    created_at: rec.created_at, updated_at: rec.created_at, expires_at: null, models: null, aliases: {}, metadata: { cost_center: '42' }, cache: null, limits: {},
  });

  const stored = await relay.kv.get(`key:${sha256(key)}`, 'json');
  assert.deepEqual(stored, {
    id: rec.id, team: 'platform', user: 'bob', env: 'prod', created_at: rec.created_at, status: 'active',
    name: 'Bob laptop', updated_at: rec.created_at, metadata: { cost_center: '42' },
  });
  const { keys } = await relay.kv.list();
  for (const k of keys) {
    assert.ok(!k.name.includes(key.split('_').at(-1)), 'the secret never appears in KV names');
    assert.ok(!(await relay.kv.get(k.name)).includes(key), 'nor in KV values');
  }
  const row = await relay.db.prepare('SELECT hash, team, user, status FROM keys WHERE id = ?').bind(rec.id).first();
  assert.deepEqual(row, { hash: sha256(key), team: 'platform', user: 'bob', status: 'active' });

  const used = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-echo', messages: hi } });
  assert.equal(used.res.status, 200);
  const usage = await relay.row(used.requestId);
  assert.deepEqual([usage.key_id, usage.team, usage.user], [rec.id, 'platform', 'bob']);
  const adminRow = await relay.row(r.requestId);
  // Admin calls are rows too, but not usage of the key they act on.
  assert.deepEqual([adminRow.route, adminRow.status, adminRow.key_id], ['/admin/keys', 201, null]);
});

test('create validation: defaults, slugs, unknown fields, sizes, types', async () => {
  const ok = await mint({ team: 't1', user: 'u1' });
  assert.ok(ok.key.startsWith('lc_prod_t1_u1_'));
  const cases = [
    [{ team: 'Team_1', user: 'u1' }, err("'team' must be 1-32 characters of a-z, 0-9 and '-'.", 'team')],
    [{ team: 't', user: 'u', admin: true }, err('Unrecognized request argument supplied: admin', 'admin')],
    [{ team: 't' }, err("Missing required parameter: 'user'.", 'user')],
    [{ team: 't', user: 'u', name: 'x'.repeat(101) }, err("'name' must be 1-100 characters.", 'name')],
    [{ team: 't', user: 'u', expires_at: 'next week' }, err("'expires_at' must be an RFC 3339 UTC time such as 2026-12-31T23:59:59Z.", 'expires_at')],
    [{ team: 't', user: 'u', models: 'gpt-4o' }, err("'models' must be an array of at most 100 model names or patterns (a trailing * matches a prefix), or null.", 'models')],
    [{ team: 't', user: 'u', aliases: { fast: 7 } }, err("'aliases.fast' must be a string.", 'aliases.fast')],
  ];
  for (const [body, expected] of cases) {
    const r = await admin('/admin/keys', { body });
    assert.equal(r.res.status, 400, JSON.stringify(body));
    assert.deepEqual(r.json, expected);
  }
  const notJson = await admin('/admin/keys', { method: 'POST', raw: '{"team":', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.res.status, 400);
  assert.deepEqual(notJson.json, err('We could not parse the JSON body of your request.'));
});

test('list filters and pages; show; unknown id is 404', async () => {
  const made = [];
  for (const user of ['a1', 'a2', 'a3']) made.push(await mint({ team: 'listing', user }));
  const page1 = await admin('/admin/keys?team=listing&limit=2');
  assert.equal(page1.res.status, 200);
  assert.deepEqual(page1.json.data.map((k) => k.user), ['a1', 'a2']);
  assert.equal(page1.json.next_cursor, made[1].id);
  assert.ok(page1.json.data.every((k) => !('key' in k)), 'a listing never shows keys');
  const page2 = await admin(`/admin/keys?team=listing&limit=2&cursor=${page1.json.next_cursor}`);
  assert.deepEqual(page2.json.data.map((k) => k.user), ['a3']);
  assert.equal(page2.json.next_cursor, null);
  const byUser = await admin('/admin/keys?team=listing&user=a2');
  assert.deepEqual(byUser.json.data.map((k) => k.id), [made[1].id]);

  const one = await admin(`/admin/keys/${made[0].id}`);
  assert.equal(one.json.user, 'a1');
  const missing = await admin('/admin/keys/key_nope');
  assert.equal(missing.res.status, 404);
  assert.deepEqual(missing.json, err("No key with id 'key_nope'.", 'id', 'not_found'));
  const badLimit = await admin('/admin/keys?limit=0');
  assert.deepEqual(badLimit.json, err("'limit' must be 1-200.", 'limit'));
  const badParam = await admin('/admin/keys?colour=red');
  assert.deepEqual(badParam.json, err("Unknown query parameter: 'colour'.", 'colour'));
});

test('change, revoke and expiry take effect at once; revoked and expired say which', async () => {
  const k = await mint({ team: 'life', user: 'cy' });
  const models = await call(relay, '/v1/models', { method: 'GET', key: k.key });
  assert.equal(models.res.status, 200, 'warm the isolate cache with the active record');

  const renamed = await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: { name: 'renamed' } });
  assert.equal(renamed.res.status, 200);
  assert.equal(renamed.json.name, 'renamed');
  assert.ok(renamed.json.updated_at >= k.updated_at);
  const identity = await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: { team: 'other' } });
  assert.deepEqual(identity.json, err('Unrecognized request argument supplied: team', 'team'));
  const nothing = await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: {} });
  assert.deepEqual(nothing.json, err('Nothing to change: give at least one field.'));

  const expired = await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: { expires_at: '2020-01-01T00:00:00Z' } });
  assert.equal(expired.json.expires_at, '2020-01-01T00:00:00.000Z');
  const r1 = await call(relay, '/v1/models', { method: 'GET', key: k.key });
  assert.equal(r1.res.status, 401);
  assert.deepEqual(r1.json, err('This API key has expired.', null, 'invalid_api_key'));
  await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: { expires_at: null } });
  assert.equal((await call(relay, '/v1/models', { method: 'GET', key: k.key })).res.status, 200);

  const revoked = await admin(`/admin/keys/${k.id}`, { method: 'DELETE' });
  assert.equal(revoked.res.status, 200);
  assert.equal(revoked.json.status, 'revoked');
  const r2 = await call(relay, '/v1/chat/completions', { key: k.key, body: { model: 'relay-echo', messages: hi } });
  assert.equal(r2.res.status, 401);
  assert.deepEqual(r2.json, err('This API key has been revoked.', null, 'invalid_api_key'));
  const listed = await admin('/admin/keys?team=life&status=revoked');
  assert.deepEqual(listed.json.data.map((x) => x.id), [k.id]);
});

test('rotate: new secret, same identity and usage history; the old secret stops at once', async () => {
  const k = await mint({ team: 'rot', user: 'dee' });
  const before = await call(relay, '/v1/chat/completions', { key: k.key, body: { model: 'relay-echo', messages: hi } });
  assert.equal(before.res.status, 200);
  const rotated = await admin(`/admin/keys/${k.id}/rotate`, { method: 'POST' });
  assert.equal(rotated.res.status, 200);
  assert.equal(rotated.json.id, k.id);
  assert.match(rotated.json.key, /^lc_prod_rot_dee_[0-9A-Za-z]{32}$/);
  assert.notEqual(rotated.json.key, k.key);
  assert.equal((await call(relay, '/v1/models', { method: 'GET', key: k.key })).res.status, 401);
  const after = await call(relay, '/v1/chat/completions', { key: rotated.json.key, body: { model: 'relay-echo', messages: hi } });
  assert.equal(after.res.status, 200);
  await relay.row(before.requestId);
  await relay.row(after.requestId);
  const history = await admin(`/admin/usage?key=${k.id}&group_by=key`);
  assert.equal(history.json.data[0].requests, 2, 'both secrets count under the one key id');
  assert.equal(await relay.kv.get(`key:${sha256(k.key)}`), null, 'old hash gone from KV');
});

test('per-key model policy: 403 model_not_allowed, aliases, and /v1/models shows only what the key may use', async () => {
  const k = await mint({ team: 'pol', user: 'eli', models: ['mock-o*'], aliases: { fast: 'mock-ok', echo: 'relay-echo' } });
  const denied = await call(relay, '/v1/chat/completions', { key: k.key, body: { model: 'gpt-4o-mini', messages: hi } });
  assert.equal(denied.res.status, 403);
  assert.deepEqual(denied.json, err("Key is not permitted to use model 'gpt-4o-mini'.", 'model', 'model_not_allowed'));
  const drow = await relay.row(denied.requestId);
  assert.deepEqual([drow.status, drow.outcome, drow.error_code, drow.model_requested], [403, 'relay_error', 'model_not_allowed', 'gpt-4o-mini']);

  relay.provider.reset();
  const viaAlias = await call(relay, '/v1/chat/completions', { key: k.key, body: { model: 'fast', messages: hi } });
  assert.equal(viaAlias.res.status, 200);
  assert.equal(relay.provider.requests[0].body.model, 'mock-ok', 'the alias is rewritten for the provider');
  const arow = await relay.row(viaAlias.requestId);
  assert.deepEqual([arow.model_requested, arow.model_upstream], ['fast', 'mock-ok']);
  assert.equal((await call(relay, '/v1/chat/completions', { key: k.key, body: { model: 'mock-ok', messages: hi } })).res.status, 200, 'pattern mock-o* allows it');

  const list = await call(relay, '/v1/models', { method: 'GET', key: k.key });
  assert.deepEqual(list.json.data.map((m) => [m.id, m.owned_by]), [['echo', 'relay'], ['fast', 'openai']]);
  const one = await call(relay, '/v1/models/gpt-4o-mini', { method: 'GET', key: k.key });
  assert.equal(one.res.status, 403);
});

test('usage report: figures equal the rows, grouped, filtered, with percentiles; CSV parses back', async () => {
  const rows = [
    // team, user, model, outcome, prompt, completion, cached, cost, duration, started
    ['rep-a', 'u1', 'm1', 'ok', 100, 10, 20, 0.001, 100, '2026-03-01T10:00:00.000Z'],
    ['rep-a', 'u1', 'm1', 'ok', 200, 20, 0, 0.002, 200, '2026-03-01T11:00:00.000Z'],
    ['rep-a', 'u2', 'm2', 'upstream_error', 50, 0, 0, null, 300, '2026-03-02T10:00:00.000Z'],
    ['rep-b', 'u3', 'm1', 'ok', 10, 1, 0, 0.0005, 400, '2026-03-02T12:00:00.000Z'],
    ['rep-a', 'u1', 'm1', 'ok', 999, 99, 0, 1, 500, '2026-04-01T00:00:00.000Z'],
  ];
  for (const [i, r] of rows.entries()) {
    await relay.db
      .prepare(`INSERT INTO usage (request_id, team, user, method, route, model_requested, provider, status, outcome, prompt_tokens, completion_tokens, cached_tokens, usage_source, cost_usd, started_at, duration_ms)
        VALUES (?, ?, ?, 'POST', '/v1/chat/completions', ?, 'openai', 200, ?, ?, ?, ?, 'upstream', ?, ?, ?)`)
      .bind(`rep_${i}`, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[9], r[8])
      .run();
  }
  const range = 'from=2026-03-01&to=2026-03-03';
  const byTeam = await admin(`/admin/usage?${range}&group_by=team`);
  assert.equal(byTeam.res.status, 200);
  assert.deepEqual(byTeam.json.group_by, ['team']);
  assert.deepEqual(byTeam.json.data, [
    { team: 'rep-a', requests: 3, prompt_tokens: 350, completion_tokens: 30, cached_tokens: 20, cache_write_tokens: 0, reasoning_tokens: 0, cost_usd: 0.003, unpriced_requests: 1, errors: 1, p50_duration_ms: 200, p95_duration_ms: 300, cache_hits: 0, cache_hit_rate: null, saved_usd: 0 },
    { team: 'rep-b', requests: 1, prompt_tokens: 10, completion_tokens: 1, cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost_usd: 0.0005, unpriced_requests: 0, errors: 0, p50_duration_ms: 400, p95_duration_ms: 400, cache_hits: 0, cache_hit_rate: null, saved_usd: 0 },
  ]);
  const byDayModel = await admin(`/admin/usage?${range}&team=rep-a&group_by=day,model`);
  assert.deepEqual(byDayModel.json.data.map((r) => [r.day, r.model, r.requests]), [['2026-03-01', 'm1', 2], ['2026-03-02', 'm2', 1]]);
  const total = await admin(`/admin/usage?${range}&outcome=ok&team=rep-a`);
  assert.equal(total.json.data.length, 1);
  assert.equal(total.json.data[0].requests, 2);

  const bad = await admin('/admin/usage?group_by=colour');
  assert.equal(bad.res.status, 400);
  assert.equal(bad.json.error.param, 'group_by');

  const exported = await call(relay, `/admin/usage/export?format=csv&${range}&group_by=team`, { method: 'GET', key: ADMIN_TOKEN });
  assert.equal(exported.res.headers.get('content-type'), 'text/csv; charset=utf-8');
  const lines = exported.text.trim().split('\r\n').map((l) => l.split(','));
  assert.deepEqual(lines[0], ['team', 'requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'cost_usd', 'unpriced_requests', 'errors', 'p50_duration_ms', 'p95_duration_ms', 'cache_hits', 'cache_hit_rate', 'saved_usd']);
  // An empty cell is a null (no row used the cache, so there is no hit rate).
  const parsed = lines.slice(1).map((l) => Object.fromEntries(lines[0].map((h, i) => [h, h === 'team' ? l[i] : l[i] === '' ? null : Number(l[i])])));
  assert.deepEqual(parsed, byTeam.json.data);
});

test('reports stay on indexes: the query plan of a filtered report uses one', async () => {
  const plan = await relay.db
    .prepare("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM usage WHERE team = 'x' AND started_at >= '2026-01-01' AND started_at < '2026-02-01'")
    .all();
  const detail = plan.results.map((r) => r.detail).join(' | ');
  assert.match(detail, /USING (COVERING )?INDEX usage_team_started/);
  const byKey = await relay.db.prepare("EXPLAIN QUERY PLAN SELECT * FROM usage WHERE key_id = 'k' AND started_at >= '2026-01-01'").all();
  assert.match(byKey.results.map((r) => r.detail).join(' | '), /INDEX usage_key_started/);
});

test('the audit log records every admin action, never a secret', async () => {
  const k = await mint({ team: 'aud', user: 'fay' });
  await admin(`/admin/keys/${k.id}`, { method: 'PATCH', body: { name: 'n1' } });
  await admin(`/admin/keys/${k.id}/rotate`, { method: 'POST' });
  await admin(`/admin/keys/${k.id}`, { method: 'DELETE' });
  const log = await admin(`/admin/audit?key=${k.id}`);
  assert.deepEqual(log.json.data.map((e) => e.action), ['revoke', 'rotate', 'update', 'create']);
  assert.deepEqual(log.json.data[2].changes, { name: { from: null, to: 'n1' } });
  assert.deepEqual(log.json.data[0].changes, { status: { from: 'active', to: 'revoked' } });
  assert.deepEqual(log.json.data[1].changes, { secret: 'rotated' });
  const text = JSON.stringify(log.json);
  assert.ok(!text.includes(k.key.split('_').at(-1)) && !text.includes(sha256(k.key)), 'no secret, no hash');
});

test('admin auth: wrong or missing token is 401; a relay key is not an admin token', async () => {
  for (const [method, path] of [['GET', '/admin/keys'], ['GET', '/admin/usage'], ['DELETE', '/admin/keys/key_x'], ['GET', '/admin/audit']]) {
    const wrong = await call(relay, path, { method, key: `${ADMIN_TOKEN}x` });
    assert.equal(wrong.res.status, 401, path);
    assert.deepEqual(wrong.json, err('Invalid admin token.', null, 'invalid_admin_token'));
  }
  const none = await call(relay, '/admin/keys', { body: { team: 't', user: 'u' } });
  assert.equal(none.res.status, 401);
  const { key } = await relay.seedKey();
  assert.equal((await call(relay, '/admin/keys', { key, body: { team: 't', user: 'u' } })).res.status, 401);
  const method = await call(relay, '/admin/keys', { method: 'PUT', key: ADMIN_TOKEN, body: {} });
  assert.equal(method.res.status, 405);
  assert.equal(method.res.headers.get('allow'), 'GET, POST');
});

test('without ADMIN_TOKEN every admin route is 404', async () => {
  const bare = await startRelay({ mock: false, vars: { ADMIN_TOKEN: undefined } });
  try {
    for (const [method, path] of [['POST', '/admin/keys'], ['GET', '/admin/keys'], ['GET', '/admin/usage']]) {
      const r = await call(bare, path, { method, key: ADMIN_TOKEN, body: method === 'POST' ? { team: 't', user: 'u' } : undefined });
      assert.equal(r.res.status, 404);
      assert.deepEqual(r.json, err(`Invalid URL (${method} ${path})`));
    }
  } finally {
    await bare.close();
  }
});

test('aliases Cursor would intercept come back with a warning', async () => {
  const k = await mint({ team: 'lint', user: 'gus', aliases: { 'gpt-fast': 'mock-ok', 'relay-fast': 'mock-ok' } });
  assert.deepEqual(k.warnings, [
    "'gpt-fast' contains a name Cursor intercepts (gpt, claude, gemini, o1/o3/o4); Cursor users should get a neutral alias such as 'relay-sonnet'",
  ]);
  const clean = await mint({ team: 'lint', user: 'hal', aliases: { 'relay-fast': 'mock-ok' } });
  assert.equal(clean.warnings, undefined);
});
