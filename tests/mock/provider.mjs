// Mock OpenAI-compatible upstream for the relay's runtime tests: scripted
// Chat Completions behaviours (chosen by `model`), request recording, and SSE parsing.
import { listen, track, sendJson, playSse } from './http.mjs';
import { isResponsesPath, responsesApi } from './responses.mjs';

const REPLY_WORDS = ['Hello ', 'from ', 'the ', 'mock ', 'provider.'];
export const REPLY_TEXT = REPLY_WORDS.join('');
const LONG_WORDS = Array.from({ length: 100 }, (_, i) => `w${i} `);
const ERROR_STATUSES = new Set([400, 401, 403, 404, 413, 422, 429, 500, 503]);
const MOCK_MODELS = ['mock-ok', 'mock-cached', 'mock-long', 'mock-tools', 'mock-no-usage'];

// Matches protocol.md §2.3's tool-call example, so relay tests can compare against the doc.
const TOOL_DELTAS = [
  { role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
  { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
  { tool_calls: [{ index: 0, function: { arguments: '"SF"}' } }] },
  { tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'get_weather', arguments: '{"city":"NYC"}' } }] },
];
const TOOL_CALLS = [
  { id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '{"city":"SF"}' } },
  { id: 'call_B', type: 'function', function: { name: 'get_weather', arguments: '{"city":"NYC"}' } },
];

// gpt-4o-mini* behave like OpenAI's real model: a 16,384-token output cap and no field the
// Chat Completions API does not define, top level or nested, so a translation that leaks an
// Anthropic field (thinking, cache_control, defer_loading…) or passes Claude Code's
// max_tokens: 32000 through fails here as it would there.
export const STRICT_OUTPUT_CAP = 16384;
const CHAT_FIELDS = new Set([
  'model', 'messages', 'stream', 'stream_options', 'tools', 'tool_choice', 'parallel_tool_calls', 'n',
  'max_tokens', 'max_completion_tokens', 'response_format', 'user', 'temperature', 'top_p', 'stop',
  'seed', 'logprobs', 'top_logprobs', 'logit_bias', 'presence_penalty', 'frequency_penalty',
  'reasoning_effort', 'verbosity', 'service_tier', 'store', 'metadata', 'prediction', 'audio',
  'modalities', 'web_search_options', 'prompt_cache_key', 'safety_identifier', 'functions', 'function_call',
]);
const MESSAGE_FIELDS = new Set(['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'refusal', 'function_call', 'audio']);
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
const PART_FIELDS = { text: ['type', 'text'], image_url: ['type', 'image_url'], input_audio: ['type', 'input_audio'], file: ['type', 'file'] };
const TOOL_CALL_FIELDS = new Set(['id', 'type', 'function']);
const FUNCTION_FIELDS = new Set(['name', 'description', 'parameters', 'strict']);

function extra(obj, allowed, at) {
  const bad = Object.keys(obj ?? {}).find((k) => !allowed.has(k));
  return bad === undefined ? null : `Additional properties are not allowed ('${bad}' was unexpected) - '${at}'`;
}

/** The first thing real OpenAI would refuse in `body`, as [message, param, code], or null. */
export function strictChatError(body) {
  const unknown = Object.keys(body).find((k) => !CHAT_FIELDS.has(k));
  if (unknown !== undefined) return [`Unrecognized request argument supplied: ${unknown}`, null, null];
  for (const field of ['max_completion_tokens', 'max_tokens']) {
    const n = body[field];
    if (typeof n === 'number' && n > STRICT_OUTPUT_CAP) {
      return [`${field} is too large: ${n}. This model supports at most ${STRICT_OUTPUT_CAP} completion tokens, whereas you provided ${n}.`, field, 'invalid_value'];
    }
  }
  for (const [i, m] of (Array.isArray(body.messages) ? body.messages : []).entries()) {
    const at = `messages.${i}`;
    if (!ROLES.has(m?.role)) return [`Invalid value: '${m?.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`, `${at}.role`, 'invalid_value'];
    const e = extra(m, MESSAGE_FIELDS, at);
    if (e) return [e, null, null];
    for (const [j, part] of (Array.isArray(m.content) ? m.content : []).entries()) {
      const allowed = PART_FIELDS[part?.type];
      if (!allowed) return [`Invalid value: '${part?.type}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'.`, `${at}.content.${j}.type`, 'invalid_value'];
      const pe = extra(part, new Set(allowed), `${at}.content.${j}`);
      if (pe) return [pe, null, null];
    }
    for (const [j, call] of (Array.isArray(m.tool_calls) ? m.tool_calls : []).entries()) {
      const ce = extra(call, TOOL_CALL_FIELDS, `${at}.tool_calls.${j}`);
      if (ce) return [ce, null, null];
    }
  }
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    const te = extra(t, new Set(['type', 'function']), `tools.${i}`) ?? extra(t?.function, FUNCTION_FIELDS, `tools.${i}.function`);
    if (te) return [te, null, null];
  }
  return null;
}

function errorBody(message, type, code = null, param = null) {
  return JSON.stringify({ error: { message, type, param, code } });
}

function promptTokens(body) {
  let chars = 0;
  for (const m of Array.isArray(body?.messages) ? body.messages : []) {
    if (typeof m?.content === 'string') chars += m.content.length;
  }
  return 10 + Math.ceil(chars / 4);
}

function usageObject(prompt, completion, cached = 0, reasoning = 0) {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
    completion_tokens_details: { reasoning_tokens: reasoning },
  };
}

// Describes the "text answer" family so stream and non-stream paths share one source of truth.
function textPlan(model, body) {
  const words = model === 'mock-long' ? LONG_WORDS : REPLY_WORDS;
  const cached = model === 'mock-cached';
  return {
    words,
    usage: model === 'mock-no-usage'
      ? null
      : usageObject(promptTokens(body), words.length, cached ? 4 : 0, cached ? 2 : 0),
  };
}

export function parseSse(text) {
  const out = [];
  const blocks = String(text).replace(/\r\n?/g, '\n').split(/\n\n+/);
  for (const block of blocks) {
    const data = [];
    for (const line of block.split('\n')) {
      if (line === 'data' || line.startsWith('data:')) {
        const v = line.slice(5);
        data.push(v.startsWith(' ') ? v.slice(1) : v);
      }
    }
    // Comment-only / empty blocks carry no payload, as in the SSE spec.
    if (data.length) out.push(data.join('\n'));
  }
  return out;
}

/** Response headers `mock-headers` adds to an ordinary answer. */
export const PROVIDER_RESPONSE_HEADERS = {
  server: 'cloudflare',
  'set-cookie': '__cf_bm=abc; path=/; HttpOnly',
  'cf-ray': '8f00000000000000-SJC',
  'openai-organization': 'org-relay-account',
  'openai-processing-ms': '321',
  'openai-version': '2020-10-01',
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-remaining-tokens': '1999000',
  via: '1.1 google',
  'retry-after-ms': '5',
};

export async function startMockProvider(opts = {}) {
  const apiKey = opts.apiKey ?? 'sk-mock';
  const chunkDelayMs = opts.chunkDelayMs ?? 10;
  const slowMs = opts.slowMs ?? 1500;
  const stallMs = opts.stallMs ?? 3000;
  const requests = [];
  // Stored Responses-API responses, by id.
  const store = new Map();
  let counter = 0;

  async function handle(req, res) {
    const n = ++counter;
    const { rec, isClosed, sleep, drop, readInto } = track(req, res, requests);

    res.setHeader('x-request-id', `req_mock_${n}`);

    await readInto();
    if (isClosed()) return;

    const auth = req.headers.authorization;
    if (auth !== `Bearer ${apiKey}`) {
      return sendJson(res, 401, errorBody('Incorrect API key provided: sk-***.', 'invalid_request_error', 'invalid_api_key'));
    }

    const pathname = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && pathname === '/v1/models') {
      return sendJson(res, 200, JSON.stringify({
        object: 'list',
        data: MOCK_MODELS.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'mock' })),
      }));
    }
    if (isResponsesPath(pathname)) return responsesApi({ req, res, rec, n, sleep, isClosed, drop, chunkDelayMs, store });
    if (req.method === 'POST' && pathname === '/v1/completions') return legacyCompletion(res, rec.body, n, sleep, isClosed, chunkDelayMs);
    if (req.method === 'POST' && pathname === '/v1/embeddings') return embeddings(res, rec.body);
    if (req.method === 'POST' && pathname === '/v1/moderations') return moderations(res, rec.body, n);
    if (req.method !== 'POST' || pathname !== '/v1/chat/completions') {
      return sendJson(res, 404, errorBody(`Unknown request URL: ${req.method} ${pathname}.`, 'invalid_request_error'));
    }

    const body = rec.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error'));
    }
    if (typeof body.model !== 'string') {
      return sendJson(res, 400, errorBody('you must provide a model parameter', 'invalid_request_error'));
    }

    const model = body.model;
    const stream = body.stream === true;
    const ctx = {
      id: `chatcmpl-mock${n}`,
      created: Math.floor(Date.now() / 1000),
      model,
      includeUsage: body.stream_options?.include_usage === true,
    };

    if (model.startsWith('gpt-4o-mini')) {
      const refused = strictChatError(body);
      if (refused) return sendJson(res, 400, errorBody(refused[0], 'invalid_request_error', refused[2], refused[1]));
    }

    const errMatch = /^mock-error-(\d{3})$/.exec(model);
    if (errMatch && ERROR_STATUSES.has(Number(errMatch[1]))) {
      const status = Number(errMatch[1]);
      const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
      if (status === 429) res.setHeader('retry-after', '1');
      return sendJson(res, status, errorBody(`mock ${status} error`, type, `mock_${status}`));
    }

    switch (model) {
      case 'mock-quota':
        // OpenAI's "out of credit" answer: a 429 that no retry will fix.
        return sendJson(res, 429, errorBody('You exceeded your current quota, please check your plan and billing details.', 'insufficient_quota', 'insufficient_quota'));
      case 'mock-hang':
        return; // left open on purpose; close() or the client ends it
      case 'mock-error-400-usage':
        // A rejection that the provider still counted (and bills).
        return sendJson(res, 400, JSON.stringify({
          ...JSON.parse(errorBody('mock 400 error', 'invalid_request_error', 'mock_400')),
          usage: usageObject(7, 0),
        }));
      case 'mock-huge-usage': {
        // Counts no real provider sends: 2^64-1 and 2^63, written as exact JSON integers.
        const frames = textFrames(ctx, REPLY_WORDS, { usage: null });
        const usage = '{"prompt_tokens":18446744073709551615,"completion_tokens":9223372036854775808,"total_tokens":1,"prompt_tokens_details":{"cached_tokens":18446744073709551615}}';
        if (!stream) {
          const text = JSON.stringify(completionBody(ctx, { ...textPlan('mock-ok', body), usage: { marker: 1 } }));
          return sendJson(res, 200, text.replace('{"marker":1}', usage));
        }
        return playSse(res, sleep, isClosed, chunkDelayMs, frames);
      }
      case 'mock-big-tail': {
        // A greeting, then in one write a 7 MB content event, the finish, usage and [DONE]: more
        // than socket buffers hold, so a client that stops reading cannot have all of it even
        // though the relay has read the end.
        if (!stream) break;
        const big = 'x'.repeat(7 * 1024 * 1024);
        const tail = [
          frame(chunkJson(ctx, choice({ content: big }))),
          frame(chunkJson(ctx, choice({}, 'stop'))),
          ...(ctx.includeUsage ? [frame(chunkJson(ctx, [], usageObject(promptTokens(body), 2)))] : []),
          frame('[DONE]'),
        ].join('');
        return playSse(res, sleep, isClosed, 200, [...[...textFrames(ctx, REPLY_WORDS.slice(0, 1), { end: false })].filter(Boolean), tail]);
      }
      case 'mock-bad-json':
        return sendJson(res, 200, 'not json');
      case 'mock-json-on-stream':
        return sendJson(res, 200, JSON.stringify(completionBody(ctx, textPlan('mock-ok', body))));
      case 'mock-tools':
        if (!stream) return sendJson(res, 200, JSON.stringify(toolCompletionBody(ctx)));
        return playSse(res, sleep, isClosed, chunkDelayMs, toolFrames(ctx));
      case 'mock-drop':
        if (!stream) { await sleep(chunkDelayMs); return drop(); }
        await playSse(res, sleep, isClosed, chunkDelayMs, textFrames(ctx, REPLY_WORDS.slice(0, 3), { end: false }));
        if (!isClosed()) { await sleep(chunkDelayMs); drop(); }
        return;
      case 'mock-strict':
        // Like Mistral: `stream_options` is an unknown field and is refused with 422.
        if (body.stream_options !== undefined) {
          return sendJson(res, 422, errorBody('Extra inputs are not permitted: stream_options', 'invalid_request_error', 'extra_forbidden', 'stream_options'));
        }
        if (!stream) break;
        return playSse(res, sleep, isClosed, chunkDelayMs, textFrames(ctx, REPLY_WORDS, { usage: null }));
      case 'mock-stall':
        // Role + two words, then silence with the connection held open: a provider that stalls.
        if (!stream) return;
        await playSse(res, sleep, isClosed, chunkDelayMs, [...textFrames(ctx, REPLY_WORDS.slice(0, 2), { end: false })]);
        // Bounded: after stallMs the provider gives up and drops the connection.
        await sleep(stallMs);
        if (!isClosed()) drop();
        return;
      case 'mock-error-in-stream':
        if (!stream) return sendJson(res, 500, errorBody('boom', 'server_error'));
        return playSse(res, sleep, isClosed, chunkDelayMs, errorInStreamFrames(ctx));
      case 'mock-infinite':
        if (!stream) break;
        return playSse(res, sleep, isClosed, chunkDelayMs, infiniteFrames(ctx));
      case 'mock-slow':
        await sleep(slowMs);
        if (isClosed()) return;
        if (!stream) break;
        return playSse(res, sleep, isClosed, 100, textFrames(ctx, REPLY_WORDS, { usage: textPlan('mock-ok', body).usage }));
      case 'mock-headers':
        // What real providers answer with besides the body: their infrastructure, the relay's
        // account and its limits, cookies. None of it is the client's business.
        for (const [k, v] of Object.entries(PROVIDER_RESPONSE_HEADERS)) res.setHeader(k, v);
        break;
      case 'mock-comments':
        if (!stream) break;
        return playSse(res, sleep, isClosed, chunkDelayMs, commentFrames(ctx, textPlan('mock-ok', body)));
      default:
        break;
    }

    // mock-ok, mock-cached, mock-long, mock-no-usage and any unknown model.
    const plan = textPlan(model, body);
    if (!stream) return sendJson(res, 200, JSON.stringify(completionBody(ctx, plan)));
    return playSse(res, sleep, isClosed, chunkDelayMs, textFrames(ctx, plan.words, { usage: plan.usage }));
  }

  const { port, close } = await listen(handle, (m) => errorBody(m, 'server_error'));

  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    reset() { requests.length = 0; },
    close,
  };
}

function chunkJson(ctx, choices, usage) {
  const o = { id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model: ctx.model, choices };
  // OpenAI only adds the usage key at all when include_usage was requested.
  if (ctx.includeUsage) o.usage = usage ?? null;
  return JSON.stringify(o);
}

const choice = (delta, finish = null) => [{ index: 0, delta, logprobs: null, finish_reason: finish }];
const frame = (json, eol = '\n') => `data: ${json}${eol}${eol}`;

function* textFrames(ctx, words, { usage = null, end = true, eol = '\n' } = {}) {
  yield frame(chunkJson(ctx, choice({ role: 'assistant', content: '' })), eol);
  for (const w of words) yield frame(chunkJson(ctx, choice({ content: w })), eol);
  if (!end) { yield null; return; }
  yield frame(chunkJson(ctx, choice({}, 'stop')), eol);
  if (ctx.includeUsage && usage) yield frame(chunkJson(ctx, [], usage), eol);
  yield frame('[DONE]', eol);
}

function* commentFrames(ctx, plan) {
  let first = true;
  for (const f of textFrames(ctx, plan.words, { usage: plan.usage, eol: '\r\n' })) {
    if (!first) yield ': keep-alive\n\n';
    first = false;
    yield f;
  }
}

function* toolFrames(ctx) {
  for (const d of TOOL_DELTAS) yield frame(chunkJson(ctx, choice(d)));
  yield frame(chunkJson(ctx, choice({}, 'tool_calls')));
  if (ctx.includeUsage) yield frame(chunkJson(ctx, [], usageObject(20, 12)));
  yield frame('[DONE]');
}

function* errorInStreamFrames(ctx) {
  yield frame(chunkJson(ctx, choice({ role: 'assistant', content: '' })));
  for (const w of REPLY_WORDS.slice(0, 2)) yield frame(chunkJson(ctx, choice({ content: w })));
  yield frame(errorBody('boom', 'server_error'));
  yield frame('[DONE]');
}

function* infiniteFrames(ctx) {
  yield frame(chunkJson(ctx, choice({ role: 'assistant', content: '' })));
  // Bounded so a relay that never disconnects cannot keep a test run alive forever.
  for (let i = 0; i < 2000; i++) yield frame(chunkJson(ctx, choice({ content: 'tick ' })));
  yield frame(chunkJson(ctx, choice({}, 'stop')));
  yield frame('[DONE]');
}

function completionBody(ctx, plan) {
  const o = {
    id: ctx.id,
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.model,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: plan.words.join(''), refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    }],
  };
  if (plan.usage) o.usage = plan.usage;
  o.system_fingerprint = 'fp_mock';
  return o;
}

function toolCompletionBody(ctx) {
  return {
    id: ctx.id,
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.model,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: null, tool_calls: TOOL_CALLS, refusal: null },
      logprobs: null,
      finish_reason: 'tool_calls',
    }],
    usage: usageObject(20, 12),
    system_fingerprint: 'fp_mock',
  };
}

// Legacy completions: same shape streamed or not (§3.1); usage chunk only when asked.
async function legacyCompletion(res, body, n, sleep, isClosed, delayMs) {
  const prompt = typeof body?.prompt === 'string' ? body.prompt : '';
  const usage = { prompt_tokens: 10 + Math.ceil(prompt.length / 4), completion_tokens: REPLY_WORDS.length, total_tokens: 10 + Math.ceil(prompt.length / 4) + REPLY_WORDS.length };
  const base = { id: `cmpl-mock${n}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: body?.model };
  if (body?.stream !== true) {
    return sendJson(res, 200, JSON.stringify({ ...base, choices: [{ text: REPLY_TEXT, index: 0, logprobs: null, finish_reason: 'stop' }], usage }));
  }
  const frames = REPLY_WORDS.map((w, i) => frame(JSON.stringify({ ...base, choices: [{ text: w, index: 0, logprobs: null, finish_reason: i === REPLY_WORDS.length - 1 ? 'stop' : null }] })));
  if (body.stream_options?.include_usage === true) frames.push(frame(JSON.stringify({ ...base, choices: [], usage })));
  frames.push(frame('[DONE]'));
  return playSse(res, sleep, isClosed, delayMs, frames);
}

// Embeddings: float arrays, or little-endian float32 base64 when asked (what the SDK asks for).
function embeddings(res, body) {
  const inputs = Array.isArray(body?.input) ? body.input : [body?.input ?? ''];
  const vectors = inputs.map((_, i) => [0.25 + i, -0.5, 0.125]);
  const data = vectors.map((v, i) => ({
    object: 'embedding',
    index: i,
    embedding: body?.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
  }));
  const tokens = inputs.reduce((t, x) => t + Math.ceil(String(x).length / 4), 0);
  return sendJson(res, 200, JSON.stringify({ object: 'list', data, model: body?.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
}

// Moderations in OpenAI's shape: one result per input, flagged when its text contains
// `flag-me`; like OpenAI's, the answer reports no usage.
function moderations(res, body, n) {
  const inputs = Array.isArray(body?.input) ? body.input : [body?.input ?? ''];
  const results = inputs.map((x) => {
    const flagged = JSON.stringify(x).includes('flag-me');
    return {
      flagged,
      categories: { harassment: flagged, violence: false },
      category_scores: { harassment: flagged ? 0.97 : 0.001, violence: 0.0001 },
    };
  });
  return sendJson(res, 200, JSON.stringify({ id: `modr-mock-${n}`, model: body?.model ?? 'omni-moderation-latest', results }));
}
