// OpenAI's embedding and moderation models out of the box: the relay runs with OPENAI_API_KEY
// and the built-in OPENAI_MODELS (the harness's override removed), and the official openai
// client calls /v1/embeddings and /v1/moderations with OpenAI's own model names.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call, sha256 } from './harness.mjs';

let relay;
let key;
let client;

before(async () => {
  relay = await startRelay({ vars: { OPENAI_MODELS: undefined } });
  ({ key } = await relay.seedKey({ team: 'defaults', user: 'dee' }));
  client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
});
after(async () => relay?.close());

test('/v1/models lists OpenAI embedding and moderation models by default', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const id of ['text-embedding-3-small', 'text-embedding-3-large', 'text-embedding-ada-002', 'omni-moderation-latest']) {
    assert.ok(ids.includes(id), `${id} listed in ${ids}`);
  }
  assert.ok(!ids.some((id) => id.includes('*')), 'patterns route families but are not listed');
  const one = await client.models.retrieve('text-embedding-3-small');
  assert.equal(one.owned_by, 'openai');
});

test('embeddings: text-embedding-3-small reaches OpenAI and is metered from its usage', async () => {
  relay.provider.reset();
  const res = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world!'] });
  assert.deepEqual(res.data.map((d) => d.embedding), [[0.25, -0.5, 0.125], [1.25, -0.5, 0.125]]);
  const sent = relay.provider.requests[0];
  assert.equal(sent.path, '/v1/embeddings');
  assert.equal(sent.body.model, 'text-embedding-3-small');
  const ada = await client.embeddings.create({ model: 'text-embedding-ada-002', input: 'hi', encoding_format: 'float' });
  assert.deepEqual(ada.data[0].embedding, [0.25, -0.5, 0.125]);
  const rows = await relay.routeRows('/v1/embeddings', 2);
  assert.deepEqual(rows.map((r) => [r.model_requested, r.provider, r.outcome, r.usage_source, r.prompt_tokens, r.completion_tokens]), [
    ['text-embedding-3-small', 'openai', 'ok', 'upstream', 4, 0],
    ['text-embedding-ada-002', 'openai', 'ok', 'upstream', 1, 0],
  ]);
});

test('moderations: passed through, with or without a model, one estimated row each', async () => {
  relay.provider.reset();
  const named = await client.moderations.create({ model: 'omni-moderation-latest', input: ['all fine', 'please flag-me'] });
  assert.deepEqual(named.results.map((r) => r.flagged), [false, true]);
  assert.equal(named.results[1].categories.harassment, true);
  assert.equal(relay.provider.requests[0].path, '/v1/moderations');
  assert.equal(relay.provider.requests[0].body.model, 'omni-moderation-latest');

  // OpenAI's default model when the body names none: the relay names it upstream too.
  const unnamed = await client.moderations.create({ input: [{ type: 'text', text: 'twelve chars' }] });
  assert.equal(unnamed.model, 'omni-moderation-latest');
  assert.deepEqual(relay.provider.requests[1].body, { model: 'omni-moderation-latest', input: [{ type: 'text', text: 'twelve chars' }] });

  const rows = await relay.routeRows('/v1/moderations', 2);
  // No usage in a moderation answer: the input is estimated at 4 characters a token; OpenAI's
  // moderation is free, so the row costs 0 (priced), not NULL (unpriced).
  assert.deepEqual(rows.map((r) => [r.model_requested, r.provider, r.outcome, r.usage_source, r.prompt_tokens, r.completion_tokens, r.stream, r.cost_usd]), [
    ['omni-moderation-latest', 'openai', 'ok', 'estimated', 6, 0, 0, 0],
    ['omni-moderation-latest', 'openai', 'ok', 'estimated', 3, 0, 0, 0],
  ]);
});

test('moderations: refusals in OpenAI shape, each with its row', async () => {
  const echo = await call(relay, '/v1/moderations', { key, body: { model: 'relay-echo', input: 'x' } });
  assert.equal(echo.res.status, 400);
  assert.deepEqual(echo.json, {
    error: { message: "Model 'relay-echo' does not support /v1/moderations", type: 'invalid_request_error', param: 'model', code: 'unsupported_endpoint' },
  });
  assert.equal((await relay.row(echo.requestId)).error_code, 'unsupported_endpoint');

  const stream = await call(relay, '/v1/moderations', { key, body: { input: 'x', stream: true } });
  assert.equal(stream.res.status, 400);
  assert.deepEqual(stream.json, { error: { message: 'Moderations cannot be streamed.', type: 'invalid_request_error', param: 'stream', code: null } });

  // A key limited to embeddings may not use the default moderation model either.
  const { key: limited } = await relay.seedKey({ team: 'defaults', user: 'emb' });
  const stored = await relay.kv.get(`key:${sha256(limited)}`, 'json');
  await relay.kv.put(`key:${sha256(limited)}`, JSON.stringify({ ...stored, models: ['text-embedding-*'] }));
  const refused = await call(relay, '/v1/moderations', { key: limited, body: { input: 'x' } });
  assert.equal(refused.res.status, 403);
  assert.equal(refused.json.error.code, 'model_not_allowed');
  const row = await relay.row(refused.requestId);
  assert.equal(row.model_requested, 'omni-moderation-latest');
  const ok = await call(relay, '/v1/embeddings', { key: limited, body: { model: 'text-embedding-3-large', input: 'x' } });
  assert.equal(ok.res.status, 200);
});
