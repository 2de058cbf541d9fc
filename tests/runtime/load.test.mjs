// Nothing lost under load: 500 streamed requests at concurrency 16, a fifth of the clients
// hanging up mid-stream, must leave exactly 500 usage rows with the right outcomes.
// LOAD_TOTAL, LOAD_HANG_UP_EVERY, LOAD_CHUNK_MS, LOAD_MOD (every n-th request asks for usage)
// and LOAD_IDLE (STREAM_IDLE_MS) resize it for bisecting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startRelay } from './harness.mjs';

const TOTAL = Number(process.env.LOAD_TOTAL || 500);
const CONCURRENCY = 16;
const HANG_UP_EVERY = Number(process.env.LOAD_HANG_UP_EVERY || 5);

let relay;
let key;

before(async () => {
  relay = await startRelay({ mock: { chunkDelayMs: Number(process.env.LOAD_CHUNK_MS || 2) }, vars: process.env.LOAD_IDLE ? { STREAM_IDLE_MS: process.env.LOAD_IDLE } : {} });
  ({ key } = await relay.seedKey({ team: 'load', user: 'bot' }));
});
after(async () => relay?.close());


/** One streamed request; hangs up after the first content chunk when `hangUp`. */
function streamOnce(i, hangUp) {
  const body = JSON.stringify({
    model: 'mock-long',
    messages: [{ role: 'user', content: `request ${i}` }],
    stream: true,
    // Half the requests ask for usage themselves (bytes pass unchanged), half do not (stripped).
    ...(i % Number(process.env.LOAD_MOD || 2) === 0 ? { stream_options: { include_usage: true } } : {}),
  });
  return new Promise((resolve, reject) => {
    const req = http.request(`${relay.base}/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.setTimeout(20000, () => req.destroy(new Error(`request ${i} timed out`)));
    req.on('error', (e) => (hangUp ? undefined : reject(e)));
    req.on('response', (res) => {
      const id = res.headers['x-request-id'];
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (hangUp && text.includes('"w1 "')) {
          res.destroy();
          req.destroy();
          resolve({ id, hungUp: true });
        }
      });
      res.on('end', () => resolve({ id, hungUp: false, complete: text.endsWith('data: [DONE]\n\n') }));
      res.on('error', () => resolve({ id, hungUp: true }));
    });
    req.end(body);
  });
}

test(`${TOTAL} streamed requests at concurrency ${CONCURRENCY} with hang-ups leave ${TOTAL} rows`, async () => {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < TOTAL) {
      const i = next;
      next += 1;
      results.push(await streamOnce(i, i % HANG_UP_EVERY === 0));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  assert.equal(results.length, TOTAL);
  const ids = results.map((r) => r.id);
  assert.equal(new Set(ids).size, TOTAL, 'every request got its own id');
  const hungUp = results.filter((r) => r.hungUp).length;
  const expectedHangUps = Math.ceil(TOTAL / HANG_UP_EVERY);
  assert.equal(hungUp, expectedHangUps);
  assert.ok(results.filter((r) => !r.hungUp).every((r) => r.complete), 'completed streams ended with [DONE]');

  // Bounded wait for the watchers of hung-up streams to settle their rows.
  const deadline = Date.now() + 30000;
  let settled = 0;
  while (Date.now() < deadline) {
    settled = (await relay.db.prepare('SELECT COUNT(*) AS n FROM usage WHERE settled = 1').first()).n;
    if (settled >= TOTAL) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { n, uniq } = await relay.db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS uniq FROM usage').first();
  assert.equal(n, TOTAL, 'exactly one row per request');
  assert.equal(uniq, TOTAL, 'no duplicates');
  assert.equal(settled, TOTAL, 'every row settled');

  const { results: byOutcome } = await relay.db
    .prepare('SELECT outcome, usage_source, COUNT(*) AS n, MIN(completion_tokens) AS min_out FROM usage GROUP BY outcome, usage_source ORDER BY outcome')
    .all();
  assert.deepEqual(
    byOutcome.map((r) => [r.outcome, r.usage_source, r.n]),
    [
      ['client_cancelled', 'estimated', expectedHangUps],
      ['ok', 'upstream', TOTAL - expectedHangUps],
    ],
  );
  assert.equal(byOutcome.find((r) => r.outcome === 'ok').min_out, 100, 'provider counts recorded');
  assert.ok(byOutcome.find((r) => r.outcome === 'client_cancelled').min_out >= 1, 'cancelled rows estimate what streamed');
  const rowIds = new Set((await relay.db.prepare('SELECT request_id FROM usage').all()).results.map((r) => r.request_id));
  assert.ok(ids.every((id) => rowIds.has(id)), 'each response id has its row');
  await assertOutcomes(results);
});

/** Each request's own row: a stream the client hung up on is client_cancelled, one it read to [DONE] ok. */
async function assertOutcomes(results) {
  const wrong = [];
  for (const r of results) {
    const row = await relay.row(r.id);
    const want = r.hungUp ? 'client_cancelled' : 'ok';
    if (row.outcome !== want) wrong.push(`${r.id}: ${row.outcome}, want ${want}`);
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${results.length} rows have the wrong outcome`);
}

test('a client that stops reading after the relay has read [DONE] is client_cancelled, not ok', async () => {
  // The relay strips the usage chunk here, so it holds the 7 MB event until it is complete and
  // sees the provider's [DONE] with it; the client reads the greeting and then nothing more.
  // Its own relay with a roomier STREAM_IDLE_MS: the relay must finish reading the 7 MB tail
  // (usage and [DONE]) before the watcher takes the stalled client as gone, also on a loaded
  // machine; the client never reads on, so the outcome does not depend on the margin.
  const own = await startRelay({ vars: { STREAM_IDLE_MS: '4000' } });
  const { key } = await own.seedKey({ team: 'load', user: 'tail' });
  const body = JSON.stringify({ model: 'mock-big-tail', messages: [{ role: 'user', content: 'big' }], stream: true });
  const { id, res } = await new Promise((resolve, reject) => {
    const req = http.request(`${own.base}/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', reject);
    req.on('response', (r) => {
      r.once('data', () => {
        r.pause();
        resolve({ id: r.headers['x-request-id'], res: r });
      });
    });
    req.end(body);
  });
  try {
    const row = await own.row(id, { timeoutMs: 20000 });
    assert.equal(row.outcome, 'client_cancelled');
    assert.equal(row.usage_source, 'upstream', 'the provider billed the whole answer and said so');
  } finally {
    res.destroy();
    await own.close();
  }
});
