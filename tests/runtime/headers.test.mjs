// Header hygiene (README: "Headers"): what of the client's headers reaches each kind of
// provider (an allow-list per protocol), and what of the provider's headers reaches the client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRelay, call, PROVIDER_KEY } from './harness.mjs';
import { PROVIDER_RESPONSE_HEADERS } from '../mock/provider.mjs';

let relay;
let key;
before(async () => {
  relay = await startRelay({ anthropic: { chunkDelayMs: 2 } });
  ({ key } = await relay.seedKey({ team: 'hdr', user: 'ann' }));
});
after(async () => relay?.close());

const hello = [{ role: 'user', content: 'hi' }];

/** Everything the audit saw leak, client identity, and what a provider may legitimately get. */
const CLIENT_HEADERS = {
  'api-key': 'client-azure-key',
  'x-goog-api-key': 'client-google-key',
  'proxy-authorization': 'Basic dXNlcjpwYXNz',
  forwarded: 'for=203.0.113.7;proto=https',
  'true-client-ip': '203.0.113.7',
  'x-forwarded-for': '203.0.113.7',
  'x-real-ip': '203.0.113.7',
  cookie: 'session=1',
  origin: 'https://app.example',
  referer: 'https://app.example/chat',
  'user-agent': 'OpenAI/JS 4.0.0',
  'x-stainless-os': 'MacOS',
  'x-stainless-runtime-version': 'v20.0.0',
  'openai-organization': 'org-client',
  'openai-project': 'proj-client',
  'x-custom-tracing': 'trace-1',
  'idempotency-key': 'idem-42',
  'openai-beta': 'assistants=v2',
  'anthropic-version': '2023-06-01',
  'anthropic-beta': 'prompt-caching-2024-07-31',
};

/**
 * What the runtime itself sets on every subrequest, whatever the relay does: framing, and
 * `cf-worker` (the calling zone, which Cloudflare adds to every Worker subrequest).
 */
const RUNTIME_FRAMING = new Set(['host', 'content-length', 'connection', 'accept-encoding', 'accept', 'cf-worker']);

function forwarded(up) {
  return Object.keys(up.headers).filter((h) => !RUNTIME_FRAMING.has(h)).sort();
}

test('an OpenAI-format provider gets its key, the relay user-agent, and only OpenAI-format headers', async () => {
  relay.provider.reset();
  const r = await call(relay, '/v1/chat/completions', { key, headers: CLIENT_HEADERS, body: { model: 'mock-ok', messages: hello } });
  assert.equal(r.res.status, 200, r.text);
  const [up] = relay.provider.requests;
  assert.deepEqual(forwarded(up), ['authorization', 'content-type', 'idempotency-key', 'openai-beta', 'user-agent']);
  assert.equal(up.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  assert.equal(up.headers['content-type'], 'application/json');
  assert.equal(up.headers['idempotency-key'], 'idem-42');
  assert.match(up.headers['user-agent'], /^llm-relay\/\d+\.\d+\.\d+$/);
});

test('Anthropic gets anthropic-version and -beta, never OpenAI-format headers, on both routes', async () => {
  for (const [path, body] of [
    ['/v1/messages', { model: 'claude-mock-ok', max_tokens: 50, messages: hello }],
    ['/v1/chat/completions', { model: 'claude-mock-ok', messages: hello }],
  ]) {
    relay.claude.reset();
    const r = await call(relay, path, { key, headers: CLIENT_HEADERS, body });
    assert.equal(r.res.status, 200, `${path}: ${r.text}`);
    const [up] = relay.claude.requests;
    assert.deepEqual(
      forwarded(up),
      ['anthropic-beta', 'anthropic-version', 'content-type', 'idempotency-key', 'user-agent', 'x-api-key'],
      path,
    );
    assert.equal(up.headers['anthropic-beta'], 'prompt-caching-2024-07-31');
    assert.equal(up.headers['x-api-key'], 'sk-ant-mock');
  }
});

test('clients get no provider infrastructure, account or rate-limit headers', async () => {
  const leaked = (res) =>
    ['server', 'set-cookie', 'cf-ray', 'via', 'openai-organization', 'openai-processing-ms', 'openai-version', 'anthropic-organization-id']
      .concat([...res.headers.keys()].filter((h) => h.startsWith('x-ratelimit') || h.startsWith('anthropic-ratelimit')))
      .filter((h) => res.headers.get(h) !== null);
  for (const stream of [false, true]) {
    const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'mock-headers', messages: hello, stream } });
    assert.equal(r.res.status, 200, r.text);
    assert.deepEqual(leaked(r.res), [], `stream=${stream}`);
    assert.equal(r.res.headers.get('retry-after-ms'), PROVIDER_RESPONSE_HEADERS['retry-after-ms'], 'retry hints pass');
    assert.notEqual(r.res.headers.get('x-request-id'), null);
  }
  for (const stream of [false, true]) {
    const r = await call(relay, '/v1/messages', { key, body: { model: 'claude-mock-headers', max_tokens: 50, messages: hello, stream } });
    assert.equal(r.res.status, 200, r.text);
    assert.deepEqual(leaked(r.res), [], `messages stream=${stream}`);
  }
});
