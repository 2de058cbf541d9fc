// Translation real clients rely on (issue 14): Claude Code's recorded requests on an
// OpenAI-format model that enforces gpt-4o-mini's limits, structured output on Claude through
// the openai SDK's parse helpers, provider error words on both translated paths,
// count_tokens on OpenAI-format models, output caps, and finish_reason in the client's words.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { standardResponseFormat } from 'openai/helpers/standard-schema';
import { startRelay, call, ROOT } from './harness.mjs';
import { parseSse, REPLY_TEXT } from '../mock/provider.mjs';
import { exampleFor } from '../mock/anthropic.mjs';

const FIXTURES = join(ROOT, 'tests', 'claude-code');
const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort()
  .map((f) => ({ name: f, ...JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) }));

let relay;
let key;

before(async () => {
  relay = await startRelay({
    anthropic: { chunkDelayMs: 2 },
    mock: { chunkDelayMs: 2 },
    vars: {
      OPENAI_MODELS: 'mock-*,gpt-4o-mini*',
      // A misconfigured override, so the provider's own refusal can be seen word for word.
      MAX_OUTPUT_TOKENS: JSON.stringify({ 'gpt-4o-mini-2024-07-18': 100000 }),
    },
  });
  ({ key } = await relay.seedKey({ team: 'cc', user: 'ann' }));
});
after(async () => relay?.close());

/** Anthropic SSE text → [{event, data}] */
function anthropicEvents(text) {
  return text.split('\n\n').filter(Boolean).map((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    return { event, data: data && JSON.parse(data) };
  });
}

function replay(fx, model) {
  return call(relay, fx.path, {
    headers: { ...fx.headers, 'x-api-key': key },
    body: { ...fx.body, model },
  });
}

test('Claude Code recorded requests answer on gpt-4o-mini: mid-conversation system kept in place, max_tokens clamped, nothing Anthropic-only sent', async () => {
  assert.equal(fixtures.length, 4);
  for (const fx of fixtures) {
    relay.provider.reset();
    const r = await replay(fx, 'gpt-4o-mini');
    assert.equal(r.res.status, 200, `${fx.name}: ${r.text}`);
    const events = anthropicEvents(r.text);
    assert.deepEqual(events.map((e) => e.event).filter((e) => e !== 'ping').slice(0, 2), ['message_start', 'content_block_start']);
    assert.equal(events.at(-1).event, 'message_stop');
    const text = events.filter((e) => e.data?.delta?.type === 'text_delta').map((e) => e.data.delta.text).join('');
    assert.equal(text, REPLY_TEXT, fx.name);

    const [up] = relay.provider.requests;
    assert.equal(up.body.max_completion_tokens, 16384, `${fx.name}: clamped to gpt-4o-mini's cap`);
    // Only the headers OpenAI's protocol defines: no Anthropic betas, version or Claude Code ids.
    const leaked = Object.keys(up.headers).filter((h) => /^(anthropic-|x-claude-code-|x-app$)/.test(h));
    assert.deepEqual(leaked, [], `${fx.name}: Claude-only headers reached the OpenAI-format upstream`);
    assert.ok(Object.keys(fx.headers).some((h) => h.startsWith('x-claude-code-')), 'the fixture sends them');
    for (const field of ['thinking', 'context_management', 'output_config', 'metadata', 'max_tokens', 'system']) {
      assert.equal(up.body[field], undefined, `${fx.name}: ${field} not sent`);
    }
    // Every system message of the request, top-level first, then each mid-conversation one at
    // its own position relative to the other turns.
    const want = [];
    const sys = fx.body.system.map((b) => b.text).join('\n');
    want.push(['system', sys]);
    for (const m of fx.body.messages) {
      if (m.role === 'system') want.push(['system', typeof m.content === 'string' ? m.content : m.content.map((b) => b.text).join('\n')]);
      else if (m.role === 'assistant') want.push(['assistant']);
      else if (m.content.some?.((b) => b.type === 'tool_result')) want.push(['tool']);
      else want.push(['user']);
    }
    const got = up.body.messages.map((m) => (m.role === 'system' ? ['system', m.content] : [m.role]));
    assert.deepEqual(got, want, fx.name);

    const row = await relay.row(r.requestId);
    assert.deepEqual([row.outcome, row.provider, row.model_upstream, row.finish_reason], ['ok', 'openai', 'gpt-4o-mini', 'end_turn'], fx.name);
  }
  assert.ok(
    relay.logs.some((l) => l.includes('max_completion_tokens 32000 lowered to 16384, the output cap of gpt-4o-mini')),
    'the clamp is logged',
  );
});

test('the same recorded requests on a Claude model go out as sent: betas, thinking, context_management, cache_control', async () => {
  for (const fx of fixtures) {
    relay.claude.reset();
    const r = await replay(fx, 'claude-mock');
    assert.equal(r.res.status, 200, `${fx.name}: ${r.text}`);
    const [up] = relay.claude.requests;
    assert.equal(up.headers['anthropic-beta'], fx.headers['anthropic-beta']);
    assert.equal(up.path, '/v1/messages');
    assert.deepEqual(up.body, { ...fx.body, model: 'claude-mock' }, fx.name);
  }
});

test('a translated provider 400 reaches an Anthropic client word for word, in Anthropic\'s shape', async () => {
  const body = { model: 'gpt-4o-mini-2024-07-18', max_tokens: 32000, messages: [{ role: 'user', content: 'hi' }] };
  const r = await call(relay, '/v1/messages', { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body });
  assert.equal(r.res.status, 400);
  assert.deepEqual(r.json, {
    type: 'error',
    error: {
      type: 'invalid_request_error',
      message: 'max_completion_tokens is too large: 32000. This model supports at most 16384 completion tokens, whereas you provided 32000.',
    },
  });
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.status, row.outcome, row.error_code], [400, 'upstream_error', 'upstream_rejected']);

  // Through the official SDK: the provider's words are the exception's message.
  const client = new Anthropic({ apiKey: key, baseURL: relay.url, maxRetries: 0 });
  await assert.rejects(client.messages.create({ ...body, model: 'mock-error-404', max_tokens: 10 }), (e) => {
    assert.equal(e.status, 404);
    assert.deepEqual(e.error, { type: 'error', error: { type: 'not_found_error', message: 'mock 404 error' } });
    return true;
  });
});

test('a translated Claude 400 reaches an OpenAI client word for word, in OpenAI\'s shape', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'claude-mock-error-400', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(r.res.status, 400);
  assert.deepEqual(r.json, { error: { message: 'mock 400 error', type: 'invalid_request_error', param: null, code: null } });
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  await assert.rejects(client.chat.completions.create({ model: 'claude-mock-error-404', messages: [{ role: 'user', content: 'hi' }] }), (e) => {
    assert.equal(e.status, 404);
    assert.equal(e.message, '404 mock 404 error');
    return true;
  });
});

// A Pydantic-like model written as a Standard Schema (what zod, valibot and arktype implement),
// validating for real: the SDK's parse helpers call validate() on the content the relay returns.
const MATH_SCHEMA = {
  type: 'object',
  properties: {
    steps: { type: 'array', items: { type: 'object', properties: { explanation: { type: 'string' }, output: { type: 'string' } }, required: ['explanation', 'output'], additionalProperties: false } },
    final_answer: { type: 'string' },
    confidence: { type: 'number' },
  },
  required: ['steps', 'final_answer', 'confidence'],
  additionalProperties: false,
};
function validateMath(v) {
  const issues = [];
  if (typeof v !== 'object' || v === null) issues.push({ message: 'not an object' });
  else {
    if (!Array.isArray(v.steps) || !v.steps.every((s) => typeof s?.explanation === 'string' && typeof s?.output === 'string')) issues.push({ message: 'bad steps', path: ['steps'] });
    if (typeof v.final_answer !== 'string') issues.push({ message: 'bad final_answer', path: ['final_answer'] });
    if (typeof v.confidence !== 'number') issues.push({ message: 'bad confidence', path: ['confidence'] });
    const extra = Object.keys(v).filter((k) => !(k in MATH_SCHEMA.properties));
    if (extra.length) issues.push({ message: `unexpected ${extra}` });
  }
  return issues.length ? { issues } : { value: v };
}
const MathResponse = {
  '~standard': { version: 1, vendor: 'relay-test', validate: validateMath, jsonSchema: { input: () => structuredClone(MATH_SCHEMA) } },
};
const mathAsk = [{ role: 'user', content: 'Solve 8x + 31 = 2.' }];

test('chat.completions.parse on Claude returns the parsed, schema-valid object (non-stream and stream)', async () => {
  const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 0 });
  const response_format = standardResponseFormat(MathResponse, 'math_response');
  relay.claude.reset();
  const done = await client.chat.completions.parse({ model: 'claude-mock', messages: mathAsk, response_format });
  const choice = done.choices[0];
  const want = exampleFor(MATH_SCHEMA);
  assert.deepEqual(choice.message.parsed, want);
  assert.equal(validateMath(choice.message.parsed).issues, undefined);
  assert.equal(choice.message.tool_calls, undefined, 'no tool call leaks to the client');
  assert.equal(choice.finish_reason, 'stop');
  const [up] = relay.claude.requests;
  assert.deepEqual(up.body.tool_choice, { type: 'tool', name: 'json_response' });
  assert.deepEqual(up.body.tools.map((t) => t.name), ['json_response']);
  assert.deepEqual(up.body.tools[0].input_schema, response_format.json_schema.schema);
  assert.equal(up.body.response_format, undefined);

  const stream = client.chat.completions.stream({ model: 'claude-mock', messages: mathAsk, response_format, stream_options: { include_usage: true } });
  const final = await stream.finalChatCompletion();
  assert.deepEqual(final.choices[0].message.parsed, want);
  assert.equal(final.choices[0].message.tool_calls?.length ?? 0, 0);
  assert.equal(final.choices[0].finish_reason, 'stop');
});

test('response_format json_object on Claude answers a JSON object; an unusable schema is a 400 naming the param', async () => {
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'claude-mock', messages: mathAsk, response_format: { type: 'json_object' } } });
  assert.equal(r.res.status, 200);
  assert.deepEqual(JSON.parse(r.json.choices[0].message.content), {});
  assert.equal(r.json.choices[0].finish_reason, 'stop');
  const row = await relay.row(r.requestId);
  assert.equal(row.finish_reason, 'stop', 'the row speaks the client\'s vocabulary');

  const bad = await call(relay, '/v1/chat/completions', {
    key,
    body: { model: 'claude-mock', messages: mathAsk, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array' } } } },
  });
  assert.equal(bad.res.status, 400);
  assert.deepEqual(bad.json, { error: { message: "On Claude models the schema's root must be of type 'object'.", type: 'invalid_request_error', param: 'response_format.json_schema.schema', code: null } });
});

test('count_tokens on an OpenAI-format model is an estimate marked x-relay-estimate; on Claude it is Claude\'s count', async () => {
  relay.provider.reset();
  const fx = fixtures.find((f) => f.name === 'unknown-model-first-turn.json');
  // count_tokens takes the request without max_tokens and stream.
  const countBody = Object.fromEntries(Object.entries(fx.body).filter(([k]) => k !== 'stream' && k !== 'max_tokens'));
  const r = await call(relay, '/v1/messages/count_tokens', { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body: { ...countBody, model: 'gpt-4o-mini' } });
  assert.equal(r.res.status, 200);
  assert.equal(r.res.headers.get('x-relay-estimate'), 'true');
  assert.deepEqual(Object.keys(r.json), ['input_tokens']);
  assert.ok(r.json.input_tokens > 1000 && r.json.input_tokens < 10000, `plausible for ~10 KB of prompt: ${r.json.input_tokens}`);
  assert.equal(relay.provider.requests.length, 0, 'nothing goes upstream');
  const row = await relay.row(r.requestId);
  assert.deepEqual([row.status, row.provider, row.model_upstream, row.prompt_tokens], [200, 'openai', 'gpt-4o-mini', 0]);

  const claude = await call(relay, '/v1/messages/count_tokens', { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body: { ...countBody, model: 'claude-mock' } });
  assert.equal(claude.res.status, 200);
  assert.equal(claude.res.headers.get('x-relay-estimate'), null);
});

test('an OpenAI client on Claude gets max_tokens clamped to the Claude model\'s cap', async () => {
  relay.claude.reset();
  const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'claude-3-5-haiku-20241022', max_tokens: 100000, messages: mathAsk } });
  assert.equal(r.res.status, 200);
  assert.equal(relay.claude.requests[0].body.max_tokens, 8192);
  assert.ok(relay.logs.some((l) => l.includes('max_tokens 100000 lowered to 8192, the output cap of claude-3-5-haiku-20241022')));
});

test('the usage row\'s finish_reason is in the client\'s vocabulary on every translated path', async () => {
  const ask = [{ role: 'user', content: 'hi' }];
  const rows = [];
  // OpenAI clients on Claude: OpenAI words, streamed or not.
  for (const stream of [false, true]) {
    const r = await call(relay, '/v1/chat/completions', { key, body: { model: 'claude-mock-tools', messages: ask, stream } });
    rows.push([`chat→claude stream=${stream}`, (await relay.row(r.requestId)).finish_reason]);
  }
  // Anthropic clients on OpenAI-format models: Anthropic words, streamed or not.
  for (const stream of [false, true]) {
    const r = await call(relay, '/v1/messages', { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body: { model: 'mock-tools', max_tokens: 50, messages: ask, stream } });
    if (stream) parseSse(r.text);
    rows.push([`messages→openai stream=${stream}`, (await relay.row(r.requestId)).finish_reason]);
  }
  assert.deepEqual(rows, [
    ['chat→claude stream=false', 'tool_calls'],
    ['chat→claude stream=true', 'tool_calls'],
    ['messages→openai stream=false', 'tool_use'],
    ['messages→openai stream=true', 'tool_use'],
  ]);
});
