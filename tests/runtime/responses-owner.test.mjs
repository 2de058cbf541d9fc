// Stored OpenAI responses belong to the relay key that created them. Every response lives in the
// relay's one OpenAI account, so without the owner check any key that learned a `resp_…` id could
// read, cancel, delete or continue (`previous_response_id`) someone else's prompt and answer.
// Driven with the official `openai` client: key A creates (stream and non-stream), key B is
// refused with OpenAI's own unknown-id errors and the upstream never hears B's calls, key A is
// served, and the usage rows name the ids.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call, PROVIDER_KEY } from './harness.mjs';

let relay;
let keyA;
let keyB;
let bobId;
let alice;
let bob;

before(async () => {
  relay = await startRelay();
  ({ key: keyA } = await relay.seedKey({ team: 'red', user: 'alice' }));
  let record;
  ({ key: keyB, record } = await relay.seedKey({ team: 'blue', user: 'bob' }));
  bobId = record.id;
  alice = new OpenAI({ apiKey: keyA, baseURL: relay.base, maxRetries: 0 });
  bob = new OpenAI({ apiKey: keyB, baseURL: relay.base, maxRetries: 0 });
});
after(async () => {
  await relay?.close();
});

const notFound = (id) => ({
  error: { message: `Response with id '${id}' not found.`, type: 'invalid_request_error', param: null, code: null },
});

/** The four stored-response calls on `id`, each as a rejection (or value) of the SDK. */
function storedCalls(client, id) {
  return [
    ['retrieve', () => client.responses.retrieve(id)],
    ['input_items', () => client.responses.inputItems.list(id)],
    ['cancel', () => client.responses.cancel(id)],
    ['delete', () => client.responses.delete(id)],
  ];
}

/** Waits (bounded) for `n` settled rows of one key, oldest first. */
async function keyRows(keyId, n) {
  let rows = [];
  for (let i = 0; i < 200 && rows.length < n; i++) {
    rows = (await relay.rows()).filter((r) => r.key_id === keyId && r.settled === 1);
    if (rows.length < n) await new Promise((r) => setTimeout(r, 25));
  }
  return rows;
}

async function assertRefused(client, id) {
  for (const [name, run] of storedCalls(client, id)) {
    await assert.rejects(run(), (e) => {
      assert.equal(e.status, 404, `${name} ${id}`);
      assert.deepEqual(e.error, notFound(id).error, `${name} ${id}`);
      return true;
    });
  }
}

test("another key's stored responses are 404 in OpenAI's shape and never reach OpenAI; the creator's work", async () => {
  // Each retrieve right after its create also checks the write race: the row is written after
  // the answer, and the check waits for it.
  const plain = await alice.responses.create({ model: 'mock-ok', input: 'My secret plan', store: true });
  assert.equal((await alice.responses.retrieve(plain.id)).id, plain.id);
  const stream = alice.responses.stream({ model: 'mock-ok', input: 'Another secret', store: true });
  for await (const ev of stream) void ev;
  const streamed = await stream.finalResponse();
  assert.equal((await alice.responses.retrieve(streamed.id)).id, streamed.id);

  const rows = await relay.routeRows('/v1/responses', 2);
  assert.deepEqual(rows.map((r) => [r.stream, r.response_id]), [[0, plain.id], [1, streamed.id]]);

  relay.provider.reset();
  for (const id of [plain.id, streamed.id]) await assertRefused(bob, id);
  // Building on A's response would hand B its context: refused as OpenAI refuses an unknown one.
  await assert.rejects(bob.responses.create({ model: 'mock-ok', input: 'Repeat the above', previous_response_id: plain.id }), (e) => {
    assert.equal(e.status, 400);
    assert.deepEqual(e.error, {
      message: `Previous response with id '${plain.id}' not found.`,
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
    return true;
  });
  assert.deepEqual(relay.provider.requests, [], "none of B's calls reached OpenAI");
  // The raw answer: 404, OpenAI's body, nothing that says the response exists.
  const raw = await call(relay, `/v1/responses/${plain.id}`, { method: 'GET', key: keyB });
  assert.equal(raw.res.status, 404);
  assert.deepEqual(raw.json, notFound(plain.id));
  const refusedRows = await keyRows(bobId, 10);
  assert.equal(refusedRows.length, 10, 'one row per refused call');
  for (const r of refusedRows) {
    const want = r.route === '/v1/responses' ? [400, 'previous_response_not_found'] : [404, 'response_not_found'];
    assert.deepEqual([r.status, r.error_code, r.provider, r.response_id], [...want, null, null]);
  }

  // A's calls all pass through, with the relay's OpenAI key.
  relay.provider.reset();
  const items = await alice.responses.inputItems.list(plain.id);
  assert.deepEqual(items.data.map((i) => i.content[0].text), ['My secret plan']);
  await assert.rejects(alice.responses.cancel(plain.id), (e) => e.status === 400 && /not in progress/.test(e.message));
  assert.deepEqual(await alice.responses.delete(streamed.id), { id: streamed.id, object: 'response', deleted: true });
  const followUp = await alice.responses.create({ model: 'mock-ok', input: 'And then?', previous_response_id: plain.id });
  assert.equal(followUp.previous_response_id, plain.id);
  assert.deepEqual(
    relay.provider.requests.map((q) => [q.method, q.path, q.headers.authorization]),
    [
      ['GET', `/v1/responses/${plain.id}/input_items`, `Bearer ${PROVIDER_KEY}`],
      ['POST', `/v1/responses/${plain.id}/cancel`, `Bearer ${PROVIDER_KEY}`],
      ['DELETE', `/v1/responses/${streamed.id}`, `Bearer ${PROVIDER_KEY}`],
      ['POST', '/v1/responses', `Bearer ${PROVIDER_KEY}`],
    ],
  );
});

test('a response created at OpenAI directly (not through the relay) is refused to every key', async () => {
  const direct = await fetch(`${relay.provider.url}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PROVIDER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-ok', input: 'Made elsewhere', store: true }),
  }).then((r) => r.json());
  assert.match(direct.id, /^resp_/);
  relay.provider.reset();
  await assertRefused(alice, direct.id);
  await assertRefused(bob, direct.id);
  assert.deepEqual(relay.provider.requests, []);
});

test('a background stream can be retrieved by its creator while it runs', async () => {
  // The mock holds the stream after `response.in_progress` until the response is retrieved, so
  // this passes only if the row naming its owner was written before the stream ended.
  const res = await fetch(`${relay.base}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${keyA}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-hold', input: 'Long job', store: true, background: true, stream: true }),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let id;
  for (let i = 0; i < 100 && !id; i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    id = /"response":\{"id":"(resp_[A-Za-z0-9_-]+)"/.exec(text)?.[1];
  }
  assert.ok(id, 'response.created arrived');
  const got = await alice.responses.retrieve(id);
  assert.equal(got.id, id);
  await assertRefused(bob, id);
  for (let i = 0; i < 1000; i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  assert.match(text, /event: response\.completed/);
  const row = await relay.row(res.headers.get('x-request-id'));
  assert.deepEqual([row.stream, row.outcome, row.response_id], [1, 'ok', id]);
});
