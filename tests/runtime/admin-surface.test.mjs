// The admin surface's edges (README: "Admin API"): a too-short ADMIN_TOKEN leaves admin off,
// /admin and /dashboard send no CORS headers to any origin (API routes keep Cursor's), and the
// CSV export neutralises cells a spreadsheet would run as formulas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, ADMIN_TOKEN } from './harness.mjs';

let relay;
let key;
before(async () => {
  relay = await startRelay({ mock: false });
  ({ key } = await relay.seedKey({ team: 'csv', user: 'ann' }));
});
after(async () => relay?.close());

const EVIL = 'https://evil.example';
const CORS = ['access-control-allow-origin', 'access-control-allow-headers', 'access-control-allow-methods', 'access-control-expose-headers'];
const cors = (res) => CORS.filter((h) => res.headers.get(h) !== null);

test('an ADMIN_TOKEN under 32 characters leaves /admin and /dashboard off, and the log says why', async () => {
  const short = 'x'.repeat(31);
  const weak = await startRelay({ mock: false, vars: { ADMIN_TOKEN: short } });
  try {
    for (const path of ['/admin/keys', '/admin/usage', '/dashboard']) {
      const r = await call(weak, path, { method: 'GET', key: short });
      assert.equal(r.res.status, 404, `${path}: ${r.text}`);
      assert.equal(r.json.error.message, `Invalid URL (GET ${path})`);
    }
    assert.ok(
      weak.logs.some((l) => l.includes('ADMIN_TOKEN is 31 characters, under the 32 required: /admin and /dashboard are disabled')),
      weak.logs.join('\n'),
    );
  } finally {
    await weak.close();
  }
  assert.ok(ADMIN_TOKEN.length >= 32);
  assert.equal((await call(relay, '/admin/keys', { method: 'GET', key: ADMIN_TOKEN })).res.status, 200);
});

test('/admin and /dashboard answer no CORS headers to another origin; the API still does', async () => {
  const adminGet = await call(relay, '/admin/keys', { method: 'GET', key: ADMIN_TOKEN, headers: { origin: EVIL } });
  assert.equal(adminGet.res.status, 200);
  assert.deepEqual(cors(adminGet.res), []);
  const wrong = await call(relay, '/admin/keys', { method: 'GET', key: 'nope', headers: { origin: EVIL } });
  assert.equal(wrong.res.status, 401);
  assert.deepEqual(cors(wrong.res), [], 'errors too');
  for (const path of ['/admin/keys', '/admin/usage/export', '/dashboard']) {
    const pre = await fetch(`${relay.url}${path}`, {
      method: 'OPTIONS',
      headers: { origin: EVIL, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    assert.deepEqual(cors(pre), [], `preflight ${path}`);
  }
  const page = await call(relay, '/dashboard', { method: 'GET', headers: { origin: EVIL } });
  assert.equal(page.res.status, 200);
  assert.deepEqual(cors(page.res), []);
  const api = await call(relay, '/v1/models', { method: 'GET', key, headers: { origin: EVIL } });
  assert.equal(api.res.headers.get('access-control-allow-origin'), EVIL, 'API routes keep permissive CORS');
});

test('CSV export prefixes text cells that start a formula; numbers stay numbers', async () => {
  const models = ['=HYPERLINK("https://evil.example","x")', '+SUM(1)', '-2+3', '@cmd', 'plain'];
  const { key: holder } = await relay.seedKey({ team: 'formula', user: 'mallory' });
  for (const model of models) {
    const r = await call(relay, '/v1/chat/completions', { key: holder, body: { model, messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.res.status, 404, r.text);
    await relay.row(r.requestId);
  }
  const r = await call(relay, '/admin/usage/export?format=csv&group_by=model&team=formula', { method: 'GET', key: ADMIN_TOKEN });
  assert.equal(r.res.status, 200, r.text);
  const lines = r.text.split('\r\n').slice(1, -1);
  assert.equal(lines.length, models.length, r.text);
  const firstCells = lines.map((l) => (l.startsWith('"') ? l.slice(0, l.lastIndexOf('",') + 1) : l.slice(0, l.indexOf(','))));
  assert.deepEqual(firstCells.sort(), [
    '"\'=HYPERLINK(""https://evil.example"",""x"")"',
    "'+SUM(1)",
    "'-2+3",
    "'@cmd",
    'plain',
  ].sort());
  // The measures after the model are plain numbers (or empty), never prefixed.
  for (const line of lines) {
    const rest = line.slice(line.lastIndexOf('",') >= 0 ? line.lastIndexOf('",') + 2 : line.indexOf(',') + 1).split(',');
    for (const cell of rest) assert.match(cell, /^(-?\d+(\.\d+)?([eE][-+]?\d+)?)?$/, `cell ${JSON.stringify(cell)} in ${line}`);
  }
});
