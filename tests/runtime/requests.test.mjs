// GET /admin/requests through the real worker: rows newest first with every documented field,
// filters and time range as in the usage report, paging that neither repeats nor skips (ties
// on the start time included), and each rejection in the OpenAI error shape.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, ADMIN_TOKEN } from './harness.mjs';

let relay;

before(async () => {
  relay = await startRelay();
});
after(async () => relay?.close());

const admin = (path) => call(relay, path, { method: 'GET', key: ADMIN_TOKEN });
const err = (message, param = null, code = null) => ({ error: { message, type: 'invalid_request_error', param, code } });

const FIELDS = [
  'started_at', 'request_id', 'key_id', 'team', 'user', 'method', 'route', 'model_requested', 'model_upstream', 'provider',
  'stream', 'status', 'outcome', 'error_code', 'finish_reason', 'prompt_tokens', 'completion_tokens', 'cached_tokens',
  'cache_write_tokens', 'reasoning_tokens', 'usage_source', 'cost_usd', 'cache', 'saved_usd', 'attempts', 'client_shape', 'upstream_request_id',
  'ttfb_ms', 'duration_ms', 'settled', 'limit_scope', 'limit_name',
];

async function seed(rows) {
  for (const r of rows) {
    await relay.db
      .prepare(`INSERT INTO usage (request_id, key_id, team, user, method, route, model_requested, provider, status, outcome, prompt_tokens, completion_tokens, usage_source, cost_usd, started_at, duration_ms)
        VALUES (?, ?, ?, ?, 'POST', '/v1/chat/completions', ?, 'openai', ?, ?, ?, ?, 'upstream', ?, ?, ?)`)
      .bind(r.id, r.key ?? null, r.team, r.user ?? 'u', r.model ?? 'm1', r.status ?? 200, r.outcome ?? 'ok', r.prompt ?? 10, r.completion ?? 2, r.cost ?? 0.001, r.at, r.duration ?? 100)
      .run();
  }
}

test('a real request is listed with its key, tokens, cost and timings, newest first', async () => {
  const { key, record } = await relay.seedKey({ team: 'rq-live', user: 'ann' });
  const first = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', messages: [{ role: 'user', content: 'hello' }] } });
  const second = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', stream: true, messages: [{ role: 'user', content: 'again' }] } });
  assert.equal(first.res.status, 200);
  assert.equal(second.res.status, 200);
  const rows = [await relay.row(first.requestId), await relay.row(second.requestId)];

  const r = await admin(`/admin/requests?key=${record.id}`);
  assert.equal(r.res.status, 200);
  assert.equal(r.json.object, 'list');
  assert.equal(r.json.next_cursor, null);
  assert.deepEqual(r.json.data.map((x) => x.request_id), [second.requestId, first.requestId]);
  const listed = r.json.data[1];
  assert.deepEqual(Object.keys(listed).sort(), [...FIELDS].sort());
  for (const f of FIELDS) assert.deepEqual(listed[f], rows[0][f], f);
  assert.deepEqual(
    [listed.key_id, listed.team, listed.user, listed.model_requested, listed.outcome, listed.status, listed.usage_source],
    [record.id, 'rq-live', 'ann', 'mock-ok', 'ok', 200, 'upstream'],
  );
  assert.ok(listed.prompt_tokens > 0 && listed.completion_tokens > 0);
  assert.equal(listed.cost_usd, (listed.prompt_tokens * 1 + listed.completion_tokens * 2) / 1e6, 'mock-ok is priced 1/2 USD per million');
  assert.equal(r.json.data[0].stream, 1);
});

test('pages newest first without repeats or gaps, ties on the start time included', async () => {
  const at = (m) => `2026-05-01T10:${String(m).padStart(2, '0')}:00.000Z`;
  const rows = [
    { id: 'rq_a', team: 'rq-page', at: at(1) },
    { id: 'rq_b', team: 'rq-page', at: at(2) },
    { id: 'rq_c', team: 'rq-page', at: at(2) },
    { id: 'rq_d', team: 'rq-page', at: at(2) },
    { id: 'rq_e', team: 'rq-page', at: at(3), outcome: 'upstream_error', status: 502 },
    { id: 'rq_f', team: 'rq-other', at: at(2) },
  ];
  await seed(rows);
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await admin(`/admin/requests?team=rq-page&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(r.res.status, 200, r.text);
    assert.ok(r.json.data.length <= 2);
    seen.push(...r.json.data.map((x) => x.request_id));
    cursor = r.json.next_cursor;
    pages += 1;
  } while (cursor && pages < 10);
  assert.deepEqual(seen, ['rq_e', 'rq_d', 'rq_c', 'rq_b', 'rq_a']);
  assert.equal(pages, 3);

  // A row that arrives at the top meanwhile does not shift the pages already handed out.
  const page1 = await admin('/admin/requests?team=rq-page&limit=2');
  await seed([{ id: 'rq_z', team: 'rq-page', at: at(9) }]);
  const page2 = await admin(`/admin/requests?team=rq-page&limit=2&cursor=${encodeURIComponent(page1.json.next_cursor)}`);
  assert.deepEqual(page2.json.data.map((x) => x.request_id), ['rq_c', 'rq_b']);

  const filtered = await admin('/admin/requests?team=rq-page&outcome=upstream_error');
  assert.deepEqual(filtered.json.data.map((x) => [x.request_id, x.status]), [['rq_e', 502]]);
  const ranged = await admin(`/admin/requests?team=rq-page&from=${at(2)}&to=${at(3)}`);
  assert.deepEqual(ranged.json.data.map((x) => x.request_id), ['rq_d', 'rq_c', 'rq_b']);
  assert.equal(ranged.json.from, '2026-05-01T10:02:00.000Z');
  assert.equal(ranged.json.to, '2026-05-01T10:03:00.000Z');
  const none = await admin('/admin/requests?team=rq-nobody');
  assert.deepEqual(none.json, { object: 'list', from: null, to: null, data: [], next_cursor: null });
});

test('rejections name the parameter, in the OpenAI error shape', async () => {
  const cases = [
    ['limit=0', err("'limit' must be 1-200.", 'limit')],
    ['limit=201', err("'limit' must be 1-200.", 'limit')],
    ['cursor=req_1', err("'cursor' must be a next_cursor from a previous page.", 'cursor')],
    ['group_by=team', err("Unknown query parameter: 'group_by'.", 'group_by')],
    ['from=yesterday', err("'from' must be a date (2026-11-01) or an RFC 3339 UTC time.", 'from')],
    ['from=2026-11-02&to=2026-11-01', err("'from' must be before 'to'.", 'from')],
  ];
  for (const [qs, expected] of cases) {
    const r = await admin(`/admin/requests?${qs}`);
    assert.equal(r.res.status, 400, qs);
    assert.deepEqual(r.json, expected, qs);
  }
  const wrong = await call(relay, '/admin/requests', { method: 'GET', key: `${ADMIN_TOKEN}x` });
  assert.equal(wrong.res.status, 401);
  assert.deepEqual(wrong.json, err('Invalid admin token.', null, 'invalid_admin_token'));
  const none = await call(relay, '/admin/requests', { method: 'GET' });
  assert.equal(none.res.status, 401);
  const { key } = await relay.seedKey();
  assert.equal((await call(relay, '/admin/requests', { method: 'GET', key })).res.status, 401, 'a relay key is not an admin token');
  const post = await call(relay, '/admin/requests', { method: 'POST', key: ADMIN_TOKEN, body: {} });
  assert.equal(post.res.status, 405);
  assert.equal(post.res.headers.get('allow'), 'GET');
});

test('a key filter reads the key index, newest first', async () => {
  const plan = await relay.db
    .prepare("EXPLAIN QUERY PLAN SELECT request_id FROM usage WHERE key_id = 'k' AND started_at >= '2026-01-01' ORDER BY started_at DESC, request_id DESC LIMIT 51")
    .all();
  assert.match(plan.results.map((r) => r.detail).join(' | '), /INDEX usage_key_started/);
});
