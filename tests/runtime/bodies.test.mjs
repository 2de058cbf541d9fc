// Request bodies the relay must refuse before a provider sees them: a JSON key given twice (the
// relay and the provider would read different values), a model name or path too long for the
// usage row, and a body over MAX_BODY_BYTES (refused while it arrives, not after buffering).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startRelay, call, makeKey, sha256, ADMIN_TOKEN } from './harness.mjs';

const CAP = 1024 * 1024;
let relay;

before(async () => {
  relay = await startRelay({ anthropic: true, vars: { MAX_BODY_BYTES: String(CAP) } });
});
after(async () => relay?.close());

/** A key allowed only `models`, put straight into KV as `POST /admin/keys` would. */
async function keyFor(models) {
  const key = makeKey('test', 'policy', 'mal');
  const record = { id: `key_${randomBytes(6).toString('hex')}`, team: 'policy', user: 'mal', env: 'test', created_at: new Date().toISOString(), status: 'active', models };
  await relay.kv.put(`key:${sha256(key)}`, JSON.stringify(record));
  return key;
}

const dupMessage = (path) => `Duplicate key '${path}' in the request body: each key may appear only once in an object.`;
const openaiDup = (path) => ({ error: { message: dupMessage(path), type: 'invalid_request_error', param: path, code: null } });
const anthropicDup = (path) => ({ type: 'error', error: { type: 'invalid_request_error', message: dupMessage(path) } });
const hi = '[{"role":"user","content":"hi"}]';

/** Sends raw bytes, checks the 400 and that no provider was called and one row was left. */
async function refused(path, key, raw, want, headers = {}) {
  relay.provider.reset();
  relay.claude.reset();
  const r = await call(relay, path, { key, raw, headers: { 'content-type': 'application/json', ...headers } });
  assert.equal(r.res.status, 400, r.text);
  assert.deepEqual(r.json, want);
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.status, row.error_code, row.attempts], [400, 'invalid_request', 0]);
  assert.equal(relay.provider.requests.length, 0, 'the OpenAI mock received nothing');
  assert.equal(relay.claude.requests.length, 0, 'the Anthropic mock received nothing');
  return row;
}

test('a second `model` cannot reach a model the key is not allowed (chat, completions, embeddings, Cursor shape)', async () => {
  const key = await keyFor(['mock-ok']);
  // The bypass: the relay authorised the first, the provider would serve the last.
  await refused('/v1/chat/completions', key, `{"model":"mock-ok","messages":${hi},"model":"mock-long"}`, openaiDup('model'));
  await refused('/v1/chat/completions', key, `{"model":"mock-ok","messages":${hi},"mod\\u0065l":"mock-long"}`, openaiDup('model'));
  await refused('/v1/completions', key, '{"model":"mock-ok","prompt":"hi","model":"mock-long"}', openaiDup('model'));
  await refused('/v1/embeddings', key, '{"model":"mock-ok","input":"hi","model":"mock-long"}', openaiDup('model'));
  // Cursor's Responses-shaped body is rewritten from a parsed Value, which would keep only one.
  await refused('/v1/chat/completions', key, '{"model":"mock-ok","input":"hi","model":"mock-long"}', openaiDup('model'));
  await refused('/v1/chat/completions', key, '{"model":"mock-ok","input":"hi","reasoning":{"effort":"low","effort":"high"}}', openaiDup('reasoning.effort'));

  // The same body with one model is served, so the refusals above are about the repeat.
  relay.provider.reset();
  const ok = await call(relay, '/v1/chat/completions', { key, raw: `{"model":"mock-ok","messages":${hi}}`, headers: { 'content-type': 'application/json' } });
  assert.equal(ok.res.status, 200, ok.text);
  assert.equal(relay.provider.requests[0].body.model, 'mock-ok');
});

test('a duplicate stream_options (the usage request) is refused', async () => {
  const key = await keyFor(null);
  const body = `{"model":"mock-ok","stream":true,"messages":${hi},"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`;
  await refused('/v1/chat/completions', key, body, openaiDup('stream_options'));
  const inner = `{"model":"mock-ok","stream":true,"messages":${hi},"stream_options":{"include_usage":true,"include_usage":false}}`;
  await refused('/v1/chat/completions', key, inner, openaiDup('stream_options.include_usage'));
});

test('/v1/messages and count_tokens refuse a second `model` in Anthropic shape', async () => {
  const key = await keyFor(['claude-mock']);
  const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' };
  const body = `{"model":"claude-mock","max_tokens":10,"messages":${hi},"model":"claude-mock-cached"}`;
  await refused('/v1/messages', undefined, body, anthropicDup('model'), headers);
  await refused('/v1/messages/count_tokens', undefined, body, anthropicDup('model'), headers);
  const meta = `{"model":"claude-mock","max_tokens":10,"messages":${hi},"metadata":{"user_id":"a","user_id":"b"}}`;
  await refused('/v1/messages', undefined, meta, anthropicDup('metadata.user_id'), headers);
});

test('admin key bodies refuse a repeated key', async () => {
  const r = await call(relay, '/admin/keys', {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    raw: '{"team":"t","user":"u","models":["mock-ok"],"models":null}',
  });
  assert.equal(r.res.status, 400);
  assert.equal(r.json.error.param, 'models');
});

test('a model name over 256 characters is a 400 on model, and the row stays small', async () => {
  const key = await keyFor(null);
  relay.provider.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: `mock-ok${'x'.repeat(300_000)}`, messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(r.res.status, 400);
  assert.deepEqual(r.json.error, { message: "'model' must be at most 256 characters.", type: 'invalid_request_error', param: 'model', code: null });
  assert.equal(relay.provider.requests.length, 0);
  const row = await relay.row(r.requestId);
  assert.equal(row.model_requested, null);
  const at = await call(relay, '/v1/chat/completions', { key, body: { model: 'm'.repeat(256), messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(at.res.status, 404, 'at the cap the name is read (and is no known model)');
  assert.equal((await relay.row(at.requestId)).model_requested.length, 256);
});

test('a long path is stored clipped to 512 characters', async () => {
  const path = `/v1/${'p'.repeat(8000)}`;
  const r = await call(relay, path, { method: 'GET' });
  assert.equal(r.res.status, 404);
  const row = await relay.row(r.requestId);
  assert.equal(row.route, path.slice(0, 512));
});

test('O→A: a tool result with no tool call before it is a 400 naming it, and Claude is not called', async () => {
  const key = await keyFor(null);
  relay.claude.reset();
  const r = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'claude-mock', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'call_9', content: 'ok' }] },
  });
  assert.equal(r.res.status, 400, r.text);
  assert.equal(r.json.error.param, 'messages[1].tool_call_id');
  assert.equal(relay.claude.requests.length, 0);
});

test("Cursor's flat tool_choice is nested for the provider even when the body has no tools", async () => {
  const key = await keyFor(null);
  relay.provider.reset();
  const r = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'mock-ok', messages: [{ role: 'user', content: 'hi' }], tool_choice: { type: 'function', name: 'edit' } },
  });
  assert.equal(r.res.status, 200, r.text);
  assert.deepEqual(relay.provider.requests[0].body.tool_choice, { type: 'function', function: { name: 'edit' } });
});

/** workerd processes started by this test process (Miniflare's runtime), by /proc. */
function workerdPids() {
  const out = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      if (cmd.includes('workerd') && ppid === process.pid) out.push(pid);
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}

/**
 * Streams `total` bytes chunked (no content-length) and stops writing as soon as the relay
 * answers; resolves with the status and how many bytes had been written by then.
 */
function chunkedUpload(url, key, total) {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    let answered = null;
    req.on('response', (res) => {
      answered = { status: res.statusCode, written, requestId: res.headers['x-request-id'] };
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => { req.destroy(); resolve({ ...answered, text }); });
    });
    req.on('error', (e) => {
      // A reset after the answer is the relay cancelling the rest of the upload: fine.
      if (!answered) reject(e);
    });
    req.write('{"model":"mock-ok","messages":[{"role":"user","content":"');
    const pump = () => {
      while (!answered && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return req.once('drain', pump);
      }
      if (!answered) req.end('"}]}');
    };
    pump();
  });
}

test('a chunked upload over the cap is refused while it arrives: 413, long before the end, workerd memory bounded', async (t) => {
  const key = await keyFor(null);
  const total = 64 * 1024 * 1024;
  const [pid, ...others] = workerdPids();
  assert.ok(pid && others.length === 0, `exactly one workerd child, got ${[pid, ...others]}`);
  // Warm up so the isolate's own start-up is not counted as the upload's.
  await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', messages: [{ role: 'user', content: 'hi' }] } });
  const rssBefore = rssBytes(pid);
  relay.provider.reset();
  const r = await chunkedUpload(relay.url, key, total);
  const rssAfter = rssBytes(pid);
  t.diagnostic(`answered after ${r.written} bytes written; workerd RSS ${rssBefore} -> ${rssAfter}`);
  assert.equal(r.status, 413, r.text);
  assert.equal(JSON.parse(r.text).error.code, 'request_too_large');
  // Buffering the whole body first (what the relay did) means answering only after all 64 MiB;
  // stopping at the cap means answering after ~1 MiB plus what the sockets hold in flight.
  assert.ok(r.written < total / 4, `answered after ${r.written} of ${total} bytes were written`);
  // A 64 MiB body buffered in JS and copied into wasm would add well over 64 MiB.
  assert.ok(rssAfter - rssBefore < 32 * 1024 * 1024, `workerd RSS grew by ${rssAfter - rssBefore} bytes`);
  assert.equal(relay.provider.requests.length, 0);
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.status, row.error_code], [413, 'request_too_large']);
});
