// The stream glue (src/edge/pump.rs) under backpressure: a client slower than its provider gets
// every byte as the provider sent it, and a client that stops reading is never taken for one
// that read to the end, on the pass-through path (client asked for usage) where nothing is held
// back. Both use mock-big-tail's 7 MB event, more than socket buffers hold.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startRelay } from './harness.mjs';

let relay;
let key;

before(async () => {
  // Roomy STREAM_IDLE_MS: the slow reader below pauses often, never for this long.
  relay = await startRelay({ vars: { STREAM_IDLE_MS: '3000' } });
  ({ key } = await relay.seedKey());
});
after(async () => relay?.close());

const body = JSON.stringify({
  model: 'mock-big-tail',
  messages: [{ role: 'user', content: 'big' }],
  stream: true,
  stream_options: { include_usage: true },
});

/** Opens the stream; `onData(res, chunk)` sees each chunk the client receives. */
function open(onData) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${relay.base}/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'accept-encoding': 'identity' },
    });
    req.setTimeout(30000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => {
        chunks.push(c);
        onData(res, c);
      });
      res.on('end', () => resolve({ id: res.headers['x-request-id'], text: Buffer.concat(chunks).toString('latin1'), res }));
      res.on('error', reject);
    });
    req.end(body);
  });
}

test('a client reading 7 MB slowly gets the provider bytes unchanged, and an ok row with its usage', async () => {
  let received = 0;
  const r = await open((res, c) => {
    received += c.length;
    // Every 512 KiB the client stops for a moment, so workerd stops pulling and the relay
    // must wait for the next pull rather than read ahead or stall.
    if (received >= 512 * 1024) {
      received = 0;
      res.pause();
      setTimeout(() => res.resume(), 30);
    }
  });
  const upstream = relay.provider.requests.at(-1);
  assert.equal(r.text.length, upstream.sent.length, 'no byte lost or repeated');
  assert.ok(r.text === upstream.sent, 'the bytes are the provider\'s, in order');
  const row = await relay.row(r.id, { timeoutMs: 10000 });
  assert.equal(row.outcome, 'ok');
  assert.equal(row.usage_source, 'upstream');
  assert.equal(row.completion_tokens, 2, 'the provider\'s count');
});

test('a pass-through client that stops reading mid-stream is client_cancelled, in one row', async () => {
  let paused;
  const settled = new Promise((resolve) => {
    paused = resolve;
  });
  const req = open((res) => {
    // After the first bytes the client reads nothing more but keeps the connection.
    res.pause();
    paused(res);
  });
  req.catch(() => {});
  const res = await settled;
  const id = res.headers['x-request-id'];
  try {
    const row = await relay.row(id, { timeoutMs: 20000 });
    assert.equal(row.outcome, 'client_cancelled', 'the relay read ahead of the client, which never had the end');
    const n = await relay.db.prepare('SELECT COUNT(*) AS n FROM usage WHERE request_id = ?').bind(id).first();
    assert.equal(n.n, 1, 'one row');
  } finally {
    res.destroy();
  }
});
