// Revocation and rotation when KV writes fail (README: "Admin API"): D1 is written first, KV
// second, and KV is what requests are checked against. A failed KV write must be a 503 that
// says a retry repairs it, and the retry must repair it. KV failures are injected by the
// harness's wrapped KEYS binding (`kvFaults`), which the relay cannot tell from real KV.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, sha256, ADMIN_TOKEN } from './harness.mjs';

let relay;
before(async () => {
  relay = await startRelay({ mock: false, assets: false, kvFaults: true });
});
after(async () => relay?.close());

const admin = (path, opts = {}) => call(relay, path, { key: ADMIN_TOKEN, method: 'GET', ...opts });
/** Whether the relay accepts `key` right now (GET /v1/models needs a valid relay key). */
const accepted = async (key) => (await call(relay, '/v1/models', { method: 'GET', key })).res.status;
const kvRecord = async (key) => JSON.parse((await relay.kv.get(`key:${sha256(key)}`)) ?? 'null');

async function mint(user) {
  const r = await admin('/admin/keys', { method: 'POST', body: { team: 'sync', user } });
  assert.equal(r.res.status, 201, r.text);
  assert.equal(await accepted(r.json.key), 200);
  return r.json;
}

function assertSyncError(r) {
  assert.equal(r.res.status, 503, r.text);
  assert.equal(r.json.error.code, 'key_sync_failed');
  assert.equal(r.json.error.type, 'server_error');
  assert.match(r.json.error.message, /Retry the same request: it repairs the copy\./);
}

test('a revoke whose KV write fails answers 503, and retrying it revokes the key in KV', async () => {
  const { id, key } = await mint('rev');
  relay.kvFaults.failWrites = 100;
  const first = await admin(`/admin/keys/${id}`, { method: 'DELETE' });
  relay.kvFaults.failWrites = 0;
  assertSyncError(first);
  assert.ok(relay.kvFaults.log.some((w) => w.failed && w.key === `key:${sha256(key)}`), 'the record write was attempted');
  // D1 took the change; KV did not, so the key still works: the 503 says exactly that.
  assert.equal((await admin(`/admin/keys/${id}`)).json.status, 'revoked');
  assert.equal((await kvRecord(key)).status, 'active');
  assert.equal(await accepted(key), 200);

  const retry = await admin(`/admin/keys/${id}`, { method: 'DELETE' });
  assert.equal(retry.res.status, 200, retry.text);
  assert.equal(retry.json.status, 'revoked');
  assert.equal((await kvRecord(key)).status, 'revoked');
  assert.equal(await accepted(key), 401);
  // Once KV is right, a further revoke writes nothing.
  const writes = relay.kvFaults.log.length;
  assert.equal((await admin(`/admin/keys/${id}`, { method: 'DELETE' })).res.status, 200);
  assert.equal(relay.kvFaults.log.length, writes);
});

test('a rotation whose KV writes fail answers 503; the retry retires every earlier secret', async () => {
  const { id, key: k0 } = await mint('rot');
  // Fail only the first write of the rotation: the other writes land, the retirement does not.
  relay.kvFaults.log.length = 0;
  relay.kvFaults.failWrites = 1;
  const first = await admin(`/admin/keys/${id}/rotate`, { method: 'POST' });
  assertSyncError(first);
  assert.equal(relay.kvFaults.log[0].key, `key:${sha256(k0)}`, 'retiring the old secret is the first write');
  assert.equal(await accepted(k0), 200, 'the old secret still works until KV drops it');

  const retry = await admin(`/admin/keys/${id}/rotate`, { method: 'POST' });
  assert.equal(retry.res.status, 200, retry.text);
  const k2 = retry.json.key;
  assert.equal(await accepted(k0), 401, 'the original secret is retired');
  assert.equal(await relay.kv.get(`key:${sha256(k0)}`), null);
  assert.equal(await accepted(k2), 200);
  assert.equal(await relay.kv.get(`id:${id}`), sha256(k2));
  const row = await relay.db.prepare('SELECT hash, retired_hashes FROM keys WHERE id = ?').bind(id).first();
  assert.deepEqual([row.hash, row.retired_hashes], [sha256(k2), '[]']);

  // Every write failing: the live secret stays live (nothing half-done), and a retry finishes.
  relay.kvFaults.failWrites = 100;
  assertSyncError(await admin(`/admin/keys/${id}/rotate`, { method: 'POST' }));
  relay.kvFaults.failWrites = 0;
  assert.equal(await accepted(k2), 200);
  const k4 = (await admin(`/admin/keys/${id}/rotate`, { method: 'POST' })).json.key;
  assert.equal(await accepted(k2), 401);
  assert.equal(await accepted(k4), 200);
  const audit = await admin(`/admin/audit?key=${id}`);
  assert.equal(audit.json.data.filter((a) => a.action === 'rotate').length, 4, 'each attempt is audited');
});
