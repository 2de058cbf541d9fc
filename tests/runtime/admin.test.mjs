// POST /admin/keys through the real worker: minting, what KV stores (only the hash), using the
// minted key, validation, a wrong token, and admin routes disabled when no ADMIN_TOKEN is set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, sha256, ADMIN_TOKEN } from './harness.mjs';

let relay;

before(async () => {
  relay = await startRelay();
});
after(async () => relay?.close());

test('an admin mints a key: shown once, stored only as its SHA-256, and it works', async () => {
  const r = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 'platform', user: 'bob', env: 'prod' } });
  assert.equal(r.res.status, 201);
  const { id, key, team, user, env, created_at: createdAt, status } = r.json;
  assert.match(key, /^lc_prod_platform_bob_[0-9A-Za-z]{32}$/);
  assert.match(id, /^key_[0-9A-Za-z]{16}$/);
  assert.deepEqual({ team, user, env, status }, { team: 'platform', user: 'bob', env: 'prod', status: 'active' });
  assert.ok(Math.abs(Date.parse(createdAt) - Date.now()) < 60000);

  const stored = await relay.kv.get(`key:${sha256(key)}`, 'json');
  assert.deepEqual(stored, { id, team: 'platform', user: 'bob', env: 'prod', created_at: createdAt, status: 'active' });
  const { keys } = await relay.kv.list();
  for (const k of keys) {
    assert.ok(!k.name.includes(key.split('_').at(-1)), 'the secret never appears in KV');
    const value = await relay.kv.get(k.name);
    assert.ok(!value.includes(key), 'the key never appears in KV values');
  }

  const used = await call(relay, '/v1/chat/completions', { key, body: { model: 'relay-echo', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(used.res.status, 200);
  const row = await relay.row(used.requestId);
  assert.deepEqual([row.key_id, row.team, row.user], [id, 'platform', 'bob']);

  const adminRow = await relay.row(r.requestId);
  assert.equal(adminRow.route, '/admin/keys');
  assert.equal(adminRow.status, 201);
});

test('env defaults to prod; bad slugs and unknown fields are 400', async () => {
  const ok = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 't1', user: 'u1' } });
  assert.equal(ok.res.status, 201);
  assert.ok(ok.json.key.startsWith('lc_prod_t1_u1_'));

  const bad = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 'Team_1', user: 'u1' } });
  assert.equal(bad.res.status, 400);
  assert.deepEqual(bad.json, {
    error: { message: "'team' must be 1-32 characters of a-z, 0-9 and '-'.", type: 'invalid_request_error', param: 'team', code: null },
  });
  const extra = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 't', user: 'u', admin: true } });
  assert.equal(extra.res.status, 400);
  assert.match(extra.json.error.message, /unknown field `admin`/);
  const missing = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 't' } });
  assert.equal(missing.res.status, 400);
  assert.match(missing.json.error.message, /missing field `user`/);
});

test('a wrong or missing admin token is 401, and a relay key is not an admin token', async () => {
  const wrong = await call(relay, '/admin/keys', { key: `${ADMIN_TOKEN}x`, body: { team: 't', user: 'u' } });
  assert.equal(wrong.res.status, 401);
  assert.deepEqual(wrong.json, { error: { message: 'Invalid admin token.', type: 'invalid_request_error', param: null, code: 'invalid_admin_token' } });
  const none = await call(relay, '/admin/keys', { body: { team: 't', user: 'u' } });
  assert.equal(none.res.status, 401);
  const { key } = await relay.seedKey();
  const relayKey = await call(relay, '/admin/keys', { key, body: { team: 't', user: 'u' } });
  assert.equal(relayKey.res.status, 401);
  const row = await relay.row(wrong.requestId);
  assert.equal(row.error_code, 'invalid_admin_token');
});

test('without ADMIN_TOKEN every admin route is 404', async () => {
  const bare = await startRelay({ mock: false, vars: { ADMIN_TOKEN: undefined } });
  try {
    const r = await call(bare, '/admin/keys', { key: ADMIN_TOKEN, body: { team: 't', user: 'u' } });
    assert.equal(r.res.status, 404);
    assert.deepEqual(r.json, { error: { message: 'Invalid URL (POST /admin/keys)', type: 'invalid_request_error', param: null, code: null } });
    const row = await bare.row(r.requestId);
    assert.equal(row.status, 404);
  } finally {
    await bare.close();
  }
});
