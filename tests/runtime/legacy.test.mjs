// Legacy /v1/completions and /v1/embeddings through the real worker with the official openai
// client: passed through to OpenAI-format providers, embeddings untouched in either encoding,
// metered like chat; other models get 400 unsupported_endpoint (R3.1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRelay, call } from './harness.mjs';
import { REPLY_TEXT } from '../mock/provider.mjs';

let relay;
let key;
let client;

before(async () => {
  relay = await startRelay();
  ({ key } = await relay.seedKey({ team: 'legacy', user: 'lee' }));
  client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
});
after(async () => relay?.close());

test('legacy completions: non-stream and stream, metered from the provider', async () => {
  const done = await client.completions.create({ model: 'mock-ok', prompt: 'Say hello' });
  assert.equal(done.object, 'text_completion');
  assert.equal(done.choices[0].text, REPLY_TEXT);
  assert.equal(done.usage.prompt_tokens, 13);

  relay.provider.reset();
  const stream = await client.completions.create({ model: 'mock-ok', prompt: 'Say hello', stream: true });
  let text = '';
  for await (const chunk of stream) {
    assert.notDeepEqual(chunk.choices, [], 'the injected usage chunk is not shown to a client that did not ask');
    text += chunk.choices[0]?.text ?? '';
  }
  assert.equal(text, REPLY_TEXT);
  assert.deepEqual(relay.provider.requests[0].body.stream_options, { include_usage: true });
  const rows = await relay.routeRows('/v1/completions', 2);
  assert.deepEqual(rows.map((r) => [r.stream, r.outcome, r.usage_source, r.prompt_tokens, r.completion_tokens]), [
    [0, 'ok', 'upstream', 13, 5],
    [1, 'ok', 'upstream', 13, 5],
  ]);
});

test('embeddings: base64 (the SDK default) and float pass through untouched', async () => {
  relay.provider.reset();
  const b64 = await client.embeddings.create({ model: 'mock-embed', input: ['hello', 'world!'] });
  assert.equal(relay.provider.requests[0].body.encoding_format, 'base64', 'the SDK asked for base64');
  assert.deepEqual(b64.data.map((d) => d.embedding), [[0.25, -0.5, 0.125], [1.25, -0.5, 0.125]]);
  const float = await call(relay, '/v1/embeddings', { key, body: { model: 'mock-embed', input: 'hello', encoding_format: 'float' } });
  assert.equal(float.res.status, 200);
  assert.equal(float.text, relay.provider.requests[1].sent, 'byte for byte');
  const rows = await relay.routeRows('/v1/embeddings', 2);
  assert.deepEqual(rows.map((r) => [r.prompt_tokens, r.completion_tokens, r.usage_source]), [[4, 0, 'upstream'], [2, 0, 'upstream']]);
});

test('models that are not on an OpenAI-format provider get 400 unsupported_endpoint; bad bodies name the param', async () => {
  const r = await call(relay, '/v1/completions', { key, body: { model: 'relay-echo', prompt: 'x' } });
  assert.equal(r.res.status, 400);
  assert.deepEqual(r.json, {
    error: { message: "Model 'relay-echo' does not support /v1/completions", type: 'invalid_request_error', param: 'model', code: 'unsupported_endpoint' },
  });
  const missing = await call(relay, '/v1/embeddings', { key, body: { model: 'mock-embed' } });
  assert.deepEqual(missing.json, { error: { message: "Missing required parameter: 'input'.", type: 'invalid_request_error', param: 'input', code: null } });
  const row = await relay.row(r.requestId);
  assert.equal(row.error_code, 'unsupported_endpoint');
});
