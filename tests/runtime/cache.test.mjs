// The response cache (issue 17) through the real worker with the official `openai` and
// `@anthropic-ai/sdk` clients: the same request twice on Chat, Messages and Responses, stream
// and not — the second is a HIT the provider never sees, replayed byte for byte, with the right
// usage rows — plus scope separation, no-cache/no-store, per-request opt-in, and the answers
// that are never stored (truncated, upstream 500, client hang-up).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startRelay, call, ADMIN_TOKEN } from './harness.mjs';

let relay;
const CACHE = { ttl_s: 300, scope: 'key', sampled: false };

before(async () => {
  relay = await startRelay({ anthropic: true, mock: { chunkDelayMs: 5 } });
});
after(async () => relay?.close());

/** fetch that keeps every response's raw text, so tests see the bytes an SDK parsed. */
function recordingFetch(seen) {
  return async (url, init) => {
    const res = await fetch(url, { ...init, headers: { ...Object.fromEntries(new Headers(init?.headers)), 'accept-encoding': 'identity' } });
    const text = await res.text();
    seen.push({ status: res.status, headers: res.headers, text });
    return new Response(text, { status: res.status, headers: res.headers });
  };
}

function openai(key, extraHeaders = {}) {
  const seen = [];
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0, fetch: recordingFetch(seen), defaultHeaders: extraHeaders });
  return { client, seen };
}

function anthropic(key) {
  const seen = [];
  const client = new Anthropic({ apiKey: key, baseURL: relay.url, maxRetries: 0, fetch: recordingFetch(seen) });
  return { client, seen };
}

/** A fresh key and a prompt no other test uses, so every test starts from an empty cache. */
let serial = 0;
async function fresh({ team = 'cache-a', user = 'ann', cache = CACHE } = {}) {
  serial += 1;
  const { key, record } = await relay.seedKey({ team, user, cache: cache ?? undefined });
  return { key, record, prompt: `Cache me #${serial} ${Date.now()}` };
}

const status = (entry) => entry.headers.get('x-relay-cache-status');
const rowOf = (entry) => relay.row(entry.headers.get('x-request-id'));
const upstreamCount = (mock, text) => mock.requests.filter((r) => (r.rawBody ?? '').includes(text)).length;

function assertHitRow(hit, original) {
  assert.equal(hit.cache, 'hit');
  assert.equal(hit.cost_usd, 0, 'a hit costs nothing');
  assert.equal(hit.attempts, 0, 'no provider was called');
  assert.equal(hit.outcome, 'ok');
  for (const col of ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'provider', 'model_upstream', 'finish_reason', 'usage_source']) {
    assert.equal(hit[col], original[col], `the hit carries the original's ${col}`);
  }
  assert.equal(hit.saved_usd, original.cost_usd, 'saved what the original cost');
  assert.equal(original.saved_usd, null);
}

test('Chat non-stream through the openai SDK: STORED, then a HIT the provider never sees', async () => {
  const { key, prompt } = await fresh();
  const { client, seen } = openai(key);
  const ask = () => client.chat.completions.create({ model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: prompt }] });
  const first = await ask();
  const second = await ask();
  assert.deepEqual(second, first, 'the SDK parsed the same completion');
  assert.equal(seen[1].text, seen[0].text, 'the stored body, byte for byte');
  assert.equal(seen[1].headers.get('content-type'), seen[0].headers.get('content-type'));
  assert.deepEqual(seen.map(status), ['STORED', 'HIT']);
  assert.notEqual(seen[1].headers.get('x-request-id'), seen[0].headers.get('x-request-id'), 'the hit has its own request id');
  assert.equal(upstreamCount(relay.provider, prompt), 1, 'the mock saw one request');
  const [orig, hit] = [await rowOf(seen[0]), await rowOf(seen[1])];
  assert.equal(orig.cache, 'stored');
  assert.ok(orig.cost_usd > 0, 'mock-ok is priced');
  assertHitRow(hit, orig);
});

test('Chat stream through the openai SDK: the HIT replays the first stream byte for byte', async () => {
  const { key, prompt } = await fresh();
  const { client, seen } = openai(key);
  const ask = async () => {
    const stream = await client.chat.completions.create({ model: 'mock-ok', temperature: 0, stream: true, messages: [{ role: 'user', content: prompt }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  };
  const first = await ask();
  const orig = await rowOf(seen[0]);
  assert.equal(orig.cache, 'stored', 'stored once the stream ended complete');
  const second = await ask();
  assert.equal(second, first);
  assert.ok(first.length > 0);
  assert.equal(seen[1].text, seen[0].text, 'identical SSE bytes');
  assert.match(seen[1].headers.get('content-type'), /^text\/event-stream/);
  assert.deepEqual(seen.map(status), ['MISS', 'HIT'], 'a stream says MISS before its end is known');
  assert.equal(upstreamCount(relay.provider, prompt), 1);
  assertHitRow(await rowOf(seen[1]), orig);
  // A non-stream client never gets the stream: `stream` is part of the key.
  const plain = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: prompt }] } });
  assert.equal(plain.res.headers.get('x-relay-cache-status'), 'STORED');
  assert.equal(plain.json.object, 'chat.completion');
});

test('Messages through @anthropic-ai/sdk, non-stream and stream: HITs replay event lines exactly', async () => {
  const { key, prompt } = await fresh();
  const { client, seen } = anthropic(key);
  const body = { model: 'claude-mock', max_tokens: 64, temperature: 0, messages: [{ role: 'user', content: prompt }] };
  const m1 = await client.messages.create(body);
  const m2 = await client.messages.create(body);
  assert.deepEqual(m2, m1);
  const s1 = await client.messages.stream(body).finalMessage();
  // A stream is stored by its watcher, just before its row is written.
  assert.equal((await rowOf(seen[2])).cache, 'stored');
  const s2 = await client.messages.stream(body).finalMessage();
  assert.deepEqual(s2, s1);
  assert.deepEqual(seen.map(status), ['STORED', 'HIT', 'MISS', 'HIT']);
  assert.equal(seen[1].text, seen[0].text);
  assert.equal(seen[3].text, seen[2].text, 'identical SSE bytes');
  assert.match(seen[3].text, /^event: message_start\n/m, 'event: lines kept');
  assert.equal(upstreamCount(relay.claude, prompt), 2, 'one non-stream and one stream request reached Claude');
  assertHitRow(await rowOf(seen[1]), await rowOf(seen[0]));
  assertHitRow(await rowOf(seen[3]), await rowOf(seen[2]));
});

test('Responses through the openai SDK, non-stream and stream', async () => {
  const { key, prompt } = await fresh();
  const { client, seen } = openai(key);
  const body = { model: 'mock-ok', temperature: 0, input: prompt };
  const r1 = await client.responses.create(body);
  const r2 = await client.responses.create(body);
  assert.deepEqual(r2, r1);
  const events = async () => {
    const out = [];
    for await (const ev of await client.responses.create({ ...body, stream: true })) out.push(ev.type);
    return out;
  };
  const e1 = await events();
  assert.equal((await rowOf(seen[2])).cache, 'stored');
  const e2 = await events();
  assert.deepEqual(e2, e1);
  assert.equal(e1.at(-1), 'response.completed');
  assert.deepEqual(seen.map(status), ['STORED', 'HIT', 'MISS', 'HIT']);
  assert.equal(seen[3].text, seen[2].text);
  assert.match(seen[3].text, /^event: response\.created\n/m);
  assert.equal(upstreamCount(relay.provider, prompt), 2);
  const [o1, h1, o2, h2] = await Promise.all(seen.map(rowOf));
  assertHitRow(h1, o1);
  assertHitRow(h2, o2);
  assert.equal(o1.response_id, r1.id, 'the original created the response');
  assert.equal(h1.response_id, null, 'a hit creates none');
});

test('translated answers are cached as the client got them: Chat and Responses streams on Claude', async () => {
  const { key, prompt } = await fresh();
  const { client, seen } = openai(key);
  const chat = async () => {
    let text = '';
    for await (const c of await client.chat.completions.create({ model: 'claude-mock', temperature: 0, stream: true, messages: [{ role: 'user', content: prompt }] })) text += c.choices[0]?.delta?.content ?? '';
    return text;
  };
  const resp = async () => {
    const types = [];
    for await (const ev of await client.responses.create({ model: 'claude-mock', temperature: 0, stream: true, input: prompt })) types.push(ev.type);
    return types;
  };
  const c1 = await chat();
  assert.equal((await rowOf(seen[0])).cache, 'stored');
  assert.equal(await chat(), c1);
  const r1 = await resp();
  assert.equal((await rowOf(seen[2])).cache, 'stored');
  assert.deepEqual(await resp(), r1);
  assert.deepEqual(seen.map(status), ['MISS', 'HIT', 'MISS', 'HIT']);
  assert.equal(seen[1].text, seen[0].text, 'the translated Chat stream, byte for byte');
  assert.equal(seen[3].text, seen[2].text, 'the translated Responses events, byte for byte');
  assert.equal(upstreamCount(relay.claude, prompt), 2, 'Chat and Responses are cached apart');
  assertHitRow(await rowOf(seen[1]), await rowOf(seen[0]));
  assertHitRow(await rowOf(seen[3]), await rowOf(seen[2]));
});

test('scope: another team misses; scope "team" shares within the team only', async () => {
  const teamCache = { ttl_s: 300, scope: 'team' };
  const a = await fresh({ team: 'cache-t1', user: 'ann', cache: teamCache });
  const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: a.prompt }] };
  const first = await call(relay, '/v1/chat/completions', { key: a.key, body });
  assert.equal(first.res.headers.get('x-relay-cache-status'), 'STORED');
  const { key: sameTeam } = await relay.seedKey({ team: 'cache-t1', user: 'bob', cache: teamCache });
  const { key: otherTeam } = await relay.seedKey({ team: 'cache-t2', user: 'ann', cache: teamCache });
  const { key: ownKeyScope } = await relay.seedKey({ team: 'cache-t1', user: 'cid', cache: CACHE });
  const mate = await call(relay, '/v1/chat/completions', { key: sameTeam, body });
  const stranger = await call(relay, '/v1/chat/completions', { key: otherTeam, body });
  const own = await call(relay, '/v1/chat/completions', { key: ownKeyScope, body });
  assert.equal(mate.res.headers.get('x-relay-cache-status'), 'HIT');
  assert.equal(mate.text, first.text);
  assert.equal(stranger.res.headers.get('x-relay-cache-status'), 'STORED', "another team's key misses");
  assert.notEqual(stranger.json.id, first.json.id, 'and gets its own fresh answer');
  assert.equal(own.res.headers.get('x-relay-cache-status'), 'STORED', 'a key-scoped key does not read the team entry');
  assert.equal(upstreamCount(relay.provider, a.prompt), 3);
});

test('no-cache refreshes the entry; no-store never stores', async () => {
  const { key, prompt } = await fresh();
  const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: prompt }] };
  const first = await call(relay, '/v1/chat/completions', { key, body });
  const refreshed = await call(relay, '/v1/chat/completions', { key, body, headers: { 'x-relay-cache': 'no-cache' } });
  assert.equal(refreshed.res.headers.get('x-relay-cache-status'), 'STORED');
  assert.notEqual(refreshed.json.id, first.json.id, 'a fresh answer from the provider');
  assert.equal((await relay.row(refreshed.requestId)).cache, 'stored');
  const after = await call(relay, '/v1/chat/completions', { key, body });
  assert.equal(after.res.headers.get('x-relay-cache-status'), 'HIT');
  assert.equal(after.text, refreshed.text, 'the entry now holds the refreshed answer');
  assert.equal(upstreamCount(relay.provider, prompt), 2);
  // On a stream the header leaves before the end: BYPASS (no lookup), and the row says stored.
  const sBody = { ...body, stream: true };
  const sFresh = await call(relay, '/v1/chat/completions', { key, body: sBody, headers: { 'x-relay-cache': 'no-cache' } });
  assert.equal(sFresh.res.headers.get('x-relay-cache-status'), 'BYPASS');
  assert.equal((await relay.row(sFresh.requestId)).cache, 'stored');
  const sHit = await call(relay, '/v1/chat/completions', { key, body: sBody });
  assert.equal(sHit.res.headers.get('x-relay-cache-status'), 'HIT');
  assert.equal(sHit.text, sFresh.text);

  const other = await fresh();
  const b2 = { ...body, messages: [{ role: 'user', content: other.prompt }] };
  const ns = await call(relay, '/v1/chat/completions', { key: other.key, body: b2, headers: { 'x-relay-cache': 'no-store' } });
  assert.equal(ns.res.headers.get('x-relay-cache-status'), 'MISS');
  assert.equal((await relay.row(ns.requestId)).cache, 'miss');
  const again = await call(relay, '/v1/chat/completions', { key: other.key, body: b2 });
  assert.equal(again.res.headers.get('x-relay-cache-status'), 'STORED', 'nothing was stored before');
  const both = await call(relay, '/v1/chat/completions', { key: other.key, body: b2, headers: { 'x-relay-cache': 'no-cache, no-store' } });
  assert.equal(both.res.headers.get('x-relay-cache-status'), 'BYPASS');
  assert.equal(upstreamCount(relay.provider, other.prompt), 3);
});

test('per-request opt-in with x-relay-cache-ttl; bad headers are 400 naming them; off means no header', async () => {
  const { key, prompt } = await fresh({ cache: null });
  const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: prompt }] };
  const off = await call(relay, '/v1/chat/completions', { key, body });
  assert.equal(off.res.headers.get('x-relay-cache-status'), null, 'caching is off by default');
  assert.equal((await relay.row(off.requestId)).cache, null);
  const h = { 'x-relay-cache-ttl': '120' };
  const first = await call(relay, '/v1/chat/completions', { key, body, headers: h });
  const second = await call(relay, '/v1/chat/completions', { key, body, headers: h });
  assert.deepEqual([first, second].map((r) => r.res.headers.get('x-relay-cache-status')), ['STORED', 'HIT']);
  const up = relay.provider.requests.find((r) => (r.rawBody ?? '').includes(prompt) && r.headers['x-relay-cache-ttl'] !== undefined);
  assert.equal(up, undefined, 'the relay\'s own headers never reach the provider');
  const names = (await relay.cacheKv.list({ prefix: 'cache:' })).keys;
  const entry = names.find((k) => k.expiration && k.expiration * 1000 < Date.now() + 125000);
  assert.ok(entry, 'stored with the request\'s 120 s expiry');
  const bad = await call(relay, '/v1/chat/completions', { key, body, headers: { 'x-relay-cache-ttl': '30' } });
  assert.equal(bad.res.status, 400);
  assert.equal(bad.json.error.param, 'x-relay-cache-ttl');
  const badMode = await call(relay, '/v1/chat/completions', { key, body, headers: { 'x-relay-cache-ttl': '60', 'x-relay-cache': 'max-age=9' } });
  assert.equal(badMode.json.error.param, 'x-relay-cache');
});

test('sampled requests and n > 1 bypass unless the key opted in to sampled', async () => {
  const { key, prompt } = await fresh();
  const sampled = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', messages: [{ role: 'user', content: prompt }] } });
  assert.equal(sampled.res.headers.get('x-relay-cache-status'), 'BYPASS');
  assert.equal((await relay.row(sampled.requestId)).cache, 'bypass');
  const n2 = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-ok', n: 2, temperature: 0, messages: [{ role: 'user', content: prompt }] } });
  assert.equal(n2.res.headers.get('x-relay-cache-status'), 'BYPASS');
  const opted = await fresh({ cache: { ttl_s: 300, sampled: true } });
  const b = { model: 'mock-ok', temperature: 0.8, messages: [{ role: 'user', content: opted.prompt }] };
  const s1 = await call(relay, '/v1/chat/completions', { key: opted.key, body: b });
  const s2 = await call(relay, '/v1/chat/completions', { key: opted.key, body: b });
  assert.deepEqual([s1, s2].map((r) => r.res.headers.get('x-relay-cache-status')), ['STORED', 'HIT']);
});

test('never stored: a truncated stream, an upstream 500, a client hang-up', async () => {
  const { key, prompt } = await fresh();
  const msgs = [{ role: 'user', content: prompt }];
  for (const model of ['mock-drop', 'mock-error-500']) {
    const rows = [];
    for (let i = 0; i < 2; i += 1) {
      const r = await call(relay, '/v1/chat/completions', { key, body: { model, temperature: 0, stream: true, messages: msgs } });
      assert.equal(r.res.headers.get('x-relay-cache-status'), 'MISS', `${model}: never a hit`);
      rows.push(await relay.row(r.requestId));
    }
    assert.deepEqual(rows.map((r) => r.cache), ['miss', 'miss'], model);
    assert.notEqual(rows[0].outcome, 'ok');
  }
  assert.equal(upstreamCount(relay.provider, prompt), 4 + 2, 'mock-drop once per request, mock-error-500 twice (retried)');

  // The client leaves after the first bytes of a stream that would have completed.
  const body = JSON.stringify({ model: 'mock-long', temperature: 0, stream: true, messages: msgs });
  const controller = new AbortController();
  const res = await fetch(`${relay.base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body,
    signal: controller.signal,
  });
  const reader = res.body.getReader();
  await reader.read();
  controller.abort();
  const gone = await relay.row(res.headers.get('x-request-id'), { timeoutMs: 10000 });
  assert.equal(gone.outcome, 'client_cancelled');
  assert.equal(gone.cache, 'miss');
  const again = await call(relay, '/v1/chat/completions', { key, raw: body });
  assert.equal(again.res.headers.get('x-relay-cache-status'), 'MISS', 'the abandoned stream was not stored');
  assert.equal((await relay.row(again.requestId)).cache, 'stored', 'the complete one is');
});

test('admin API: the cache setting on key records; the report and request listing show hits and savings', async () => {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const made = await call(relay, '/admin/keys', { headers: admin, body: { team: 'cache-admin', user: 'ann', cache: { ttl_s: 600, scope: 'user' } } });
  assert.equal(made.res.status, 201);
  assert.deepEqual(made.json.cache, { ttl_s: 600, scope: 'user', sampled: false });
  const bad = await call(relay, `/admin/keys/${made.json.id}`, { method: 'PATCH', headers: admin, body: { cache: { ttl_s: 5 } } });
  assert.equal(bad.res.status, 400);
  assert.equal(bad.json.error.param, 'cache.ttl_s');

  const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: `admin ${Date.now()}` }] };
  const r1 = await call(relay, '/v1/chat/completions', { key: made.json.key, body });
  const r2 = await call(relay, '/v1/chat/completions', { key: made.json.key, body });
  assert.equal(r2.res.headers.get('x-relay-cache-status'), 'HIT');
  const [o, h] = [await relay.row(r1.requestId), await relay.row(r2.requestId)];
  const report = await call(relay, `/admin/usage?key=${made.json.id}`, { method: 'GET', headers: admin });
  const totals = report.json.data[0];
  assert.equal(totals.requests, 2);
  assert.equal(totals.cache_hits, 1);
  assert.equal(totals.cache_hit_rate, 0.5);
  assert.equal(totals.saved_usd, h.saved_usd);
  assert.equal(totals.cost_usd, o.cost_usd, 'only the original cost money');
  const listed = await call(relay, `/admin/requests?key=${made.json.id}`, { method: 'GET', headers: admin });
  assert.deepEqual(listed.json.data.map((r) => [r.cache, r.saved_usd]), [['hit', h.saved_usd], ['stored', null]]);
  const csv = await call(relay, `/admin/usage/export?format=csv&key=${made.json.id}`, { method: 'GET', headers: admin });
  const [head, line] = csv.text.trim().split(/\r?\n/);
  const cols = head.split(',');
  assert.ok(cols.includes('cache_hits') && cols.includes('cache_hit_rate') && cols.includes('saved_usd'), head);
  assert.equal(line.split(',')[cols.indexOf('cache_hits')], '1');

  const off = await call(relay, `/admin/keys/${made.json.id}`, { method: 'PATCH', headers: admin, body: { cache: null } });
  assert.equal(off.json.cache, null);
  const audit = await call(relay, `/admin/audit?key=${made.json.id}`, { method: 'GET', headers: admin });
  assert.ok(audit.json.data.some((e) => e.changes?.cache?.to === null), 'the change is audited');
});
